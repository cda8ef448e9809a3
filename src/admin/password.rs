//! What a password chosen on the panel must be (sign-up, a user's own change; issue #27): at
//! least [`MIN_LEN`] characters and not guessable by zxcvbn's estimate (score at least
//! [`MIN_SCORE`] of 4, with the user name and the product's name counted as known words).
//! Admins at a shell (`flexiproxy user add`) keep the older length-only rule.

use super::manage::ApiError;

pub const MIN_LEN: usize = 10;
/// Longer passwords are refused (Argon2 would take them; nobody types more).
pub const MAX_LEN: usize = 256;
/// zxcvbn's "safely unguessable" (about 10^10 guesses needed).
pub const MIN_SCORE: u8 = 3;

/// Checks a new password for the account `username`; `field` names it in the refusal.
pub fn check(field: &str, password: &str, username: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if len < MIN_LEN {
        return Err(
            ApiError::bad(field, format!("at least {MIN_LEN} characters")).coded("password_short"),
        );
    }
    if len > MAX_LEN {
        return Err(
            ApiError::bad(field, format!("at most {MAX_LEN} characters")).coded("too_long"),
        );
    }
    let score = u8::from(zxcvbn::zxcvbn(password, &[username, "flexiproxy", "panel"]).score());
    if score < MIN_SCORE {
        return Err(ApiError::bad(
            field,
            "too easy to guess (a common password, a name, a pattern or a repetition); use a \
             longer phrase of unrelated words or a password manager",
        )
        .coded("password_weak"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_common_and_personal_passwords_are_refused() {
        let code = |p: &str, user: &str| check("password", p, user).err().map(|e| e.code);
        assert_eq!(code("short1!", "alice"), Some("password_short"));
        for weak in [
            "password123",
            "qwertyuiop",
            "aaaaaaaaaaaa",
            "1234567890",
            "alicealice1",
        ] {
            assert_eq!(code(weak, "alice"), Some("password_weak"), "{weak}");
        }
        assert_eq!(code("flexiproxy2026", "bob"), Some("password_weak"));
        assert_eq!(code(&"x".repeat(300), "bob"), Some("too_long"));
        assert_eq!(code("tulip-carbon-orbit-97", "alice"), None);
    }
}
