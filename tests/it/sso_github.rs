//! GitHub sign-in (issue #27) against a stand-in for GitHub served over real HTTP
//! (`accounts.github.web_url`/`api_url` point at it): its authorize page answers at once
//! with a code for the user the test chose, its token endpoint checks the client secret and
//! the PKCE verifier and takes each code once, and its API tells the user, their emails and
//! their organisation memberships. FlexiProxy runs as its own process (its log is read).

use crate::harness::*;
use base64::Engine;
use flexiproxy::config::users;
use flexiproxy_testkit::{FakeProvider, Reply};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SECRET: &str = "gh-secret-canary-0c41f2";

#[derive(Default)]
struct FakeGithub {
    /// Who the next authorization is for.
    signing_in: String,
    /// Codes not yet exchanged: the user and the PKCE challenge.
    codes: HashMap<String, (String, String)>,
    issued: usize,
}

/// (id, verified primary email, member of my-org) of the stand-in's users.
fn account(login: &str) -> Option<(u64, &'static str, bool, bool)> {
    match login {
        "octocat" => Some((1001, "octocat@users.example", true, true)),
        "mallory" => Some((1002, "mallory@users.example", true, false)),
        "linda-gh" => Some((1003, "linda@example.org", true, true)),
        "sneaky" => Some((1004, "linda@example.org", false, true)),
        _ => None,
    }
}

fn query(target: &str) -> HashMap<String, String> {
    let q = target.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str(q).unwrap_or_default()
}

fn fake_github(
    state: Arc<Mutex<FakeGithub>>,
) -> impl Fn(&flexiproxy_testkit::RecordedRequest) -> Reply {
    move |req| {
        let mut gh = state.lock().unwrap();
        let path = req.path.split('?').next().unwrap_or_default().to_owned();
        let token_user = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer gho_"))
            .map(str::to_owned)
            .unwrap_or_default();
        match (req.method.as_str(), path.as_str()) {
            ("GET", "/login/oauth/authorize") => {
                let q = query(&req.path);
                gh.issued += 1;
                let code = format!("code-{}", gh.issued);
                let who = gh.signing_in.clone();
                gh.codes
                    .insert(code.clone(), (who, q["code_challenge"].clone()));
                let to = format!(
                    "{}?code={code}&state={}",
                    q["redirect_uri"],
                    q.get("state").cloned().unwrap_or_default()
                );
                Reply::text(302, "text/plain", "").header("location", &to)
            }
            ("POST", "/login/oauth/access_token") => {
                let form: HashMap<String, String> =
                    serde_urlencoded::from_bytes(&req.body).unwrap_or_default();
                let taken = gh.codes.remove(form.get("code").map_or("", |c| c.as_str()));
                let verifier_hash = flexiproxy::config::keys::hash_key(
                    form.get("code_verifier").map_or("", |v| v.as_str()),
                );
                let challenge =
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(verifier_hash);
                match taken {
                    Some((who, expected))
                        if form.get("client_secret").map(String::as_str) == Some(SECRET)
                            && expected == challenge =>
                    {
                        Reply::json(
                            200,
                            json!({"access_token": format!("gho_{who}"), "token_type": "bearer", "scope": "read:user,user:email,read:org"}),
                        )
                    }
                    // GitHub answers a bad code with 200 and an error object.
                    _ => Reply::json(200, json!({"error": "bad_verification_code"})),
                }
            }
            ("GET", "/user") => match account(&token_user) {
                Some((id, ..)) => Reply::json(200, json!({"id": id, "login": token_user})),
                None => Reply::json(500, json!({"message": "Server Error"})),
            },
            ("GET", "/user/emails") => match account(&token_user) {
                Some((_, email, verified, _)) => Reply::json(
                    200,
                    json!([
                        {"email": "noreply@users.example", "primary": false, "verified": true},
                        {"email": email, "primary": true, "verified": verified},
                    ]),
                ),
                None => Reply::json(401, json!({"message": "Bad credentials"})),
            },
            ("GET", "/user/memberships/orgs/my-org") => match account(&token_user) {
                Some((.., true)) => Reply::json(200, json!({"state": "active", "role": "member"})),
                _ => Reply::json(404, json!({"message": "Not Found"})),
            },
            _ => Reply::json(404, json!({"message": "Not Found"})),
        }
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, value) = pair.split_once('=')?;
            (k == name && !value.is_empty()).then(|| value.to_owned())
        })
}

/// Where a page that moves on by itself (`<meta http-equiv="refresh">`) goes.
async fn moves_on_to(resp: reqwest::Response) -> String {
    let page = resp.text().await.unwrap();
    let url = page
        .split(r#"http-equiv="refresh" content="0;url="#)
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no refresh: {page}"));
    unescape(url)
}

/// An attribute's value as the browser reads it.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// How a sign-in ended: a session cookie, or the login page's words.
#[derive(Debug)]
enum Ended {
    SignedIn(String),
    Refused(String),
}

/// The whole flow as a browser follows it, in `lang`; also returns the callback URL used.
async fn sign_in(
    panel: &str,
    gh: &Arc<Mutex<FakeGithub>>,
    login: &str,
    lang: &str,
) -> (Ended, String) {
    gh.lock().unwrap().signing_in = login.to_owned();
    let http = no_redirects();
    let start = http
        .post(format!("{panel}/sso/github"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200);
    let flow = set_cookie(&start, "fp_sso").expect("the flow cookie");
    let at_github = http.get(moves_on_to(start).await).send().await.unwrap();
    assert_eq!(at_github.status(), 302);
    let callback = location(&at_github);
    (finish(panel, &callback, &flow, lang).await, callback)
}

async fn finish(panel: &str, callback: &str, flow: &str, lang: &str) -> Ended {
    let http = no_redirects();
    let back = http
        .get(callback)
        .header("cookie", format!("fp_sso={flow}"))
        .send()
        .await
        .unwrap();
    if back.status() == 200 {
        let session = set_cookie(&back, "fp_session").expect("a session cookie");
        let page = back.text().await.unwrap();
        assert!(
            unescape(&page).contains(r#"http-equiv="refresh" content="0;url=/""#),
            "{page}"
        );
        return Ended::SignedIn(session);
    }
    assert_eq!(back.status(), 303, "never a 5xx");
    let login_page = http
        .get(format!("{panel}{}", location(&back)))
        .header("accept-language", lang)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let error = login_page
        .split(r#"id="error">"#)
        .nth(1)
        .and_then(|s| s.split('<').next())
        .unwrap_or_else(|| panic!("no error on the login page: {login_page}"));
    Ended::Refused(error.to_owned())
}

async fn whoami(panel: &str, session: &str) -> String {
    let page = no_redirects()
        .get(format!("{panel}/account"))
        .header("cookie", format!("fp_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    page.split(r#"id="whoami""#)
        .nth(1)
        .and_then(|s| s.split('>').nth(1))
        .and_then(|s| s.split('<').next())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn github_sign_in_with_org_membership() {
    let gh = Arc::new(Mutex::new(FakeGithub::default()));
    let fake = FakeProvider::start(fake_github(gh.clone())).await;
    let (port, admin) = (free_port(), free_port());
    let dir = config_dir(
        &format!(
            "listen: 127.0.0.1:{port}\nthreads: 2\nadmin:\n  listen: 127.0.0.1:{admin}\n\
             accounts:\n  registration: open\n  github: {{ client_id: flexi-gh, client_secret: \"${{GH_SECRET}}\", allowed_orgs: [my-org], web_url: \"{o}\", api_url: \"{o}\" }}\n",
            o = fake.origin()
        ),
        &[],
    );
    let users_file = dir.path().join("users.yaml");
    users::add(&users_file, "linda", "lindas-own-password-9", false, None).unwrap();
    users::edit(&users_file, "linda", |u| {
        u.email = Some("linda@example.org".into())
    })
    .unwrap();
    let config = dir.path().join("flexiproxy.yaml");
    let proxy = ProcessProxy::spawn(&config, port, &[("GH_SECRET", SECRET)]);
    let panel = format!("http://127.0.0.1:{admin}");
    let login_page = reqwest::get(format!("{panel}/login"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        login_page.contains(r#"id="sso-github""#) && login_page.contains("Sign in with GitHub")
    );

    // Another site's form cannot start a sign-in (the panel's origin check).
    let forged = no_redirects()
        .post(format!("{panel}/sso/github"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "fp_sso").is_none());

    // First sign-in makes the account, the second finds it.
    let (first, callback) = sign_in(&panel, &gh, "octocat", "en").await;
    let Ended::SignedIn(session) = first else {
        panic!("{first:?}")
    };
    assert_eq!(whoami(&panel, &session).await, "octocat");
    let (second, _) = sign_in(&panel, &gh, "octocat", "en").await;
    let Ended::SignedIn(session2) = second else {
        panic!("{second:?}")
    };
    assert_eq!(whoami(&panel, &session2).await, "octocat");
    // The same answer again: its state is used up.
    let Ended::Refused(again) = finish(&panel, &callback, "any", "en").await else {
        panic!()
    };
    assert!(again.contains("already used"), "{again}");

    // Not in my-org: refused, in English and in Chinese.
    let (mallory, _) = sign_in(&panel, &gh, "mallory", "en").await;
    assert!(
        matches!(&mallory, Ended::Refused(m) if m.contains("not a member")),
        "{mallory:?}"
    );
    let (mallory_zh, _) = sign_in(&panel, &gh, "mallory", "zh-CN").await;
    assert!(
        matches!(&mallory_zh, Ended::Refused(m) if m.contains("组织")),
        "{mallory_zh:?}"
    );

    // A verified primary email links the password account; an unverified one does not.
    let (linked, _) = sign_in(&panel, &gh, "linda-gh", "en").await;
    let Ended::SignedIn(s) = linked else {
        panic!("{linked:?}")
    };
    assert_eq!(whoami(&panel, &s).await, "linda");
    let (sneaky, _) = sign_in(&panel, &gh, "sneaky", "en").await;
    let Ended::SignedIn(s) = sneaky else {
        panic!("{sneaky:?}")
    };
    assert_eq!(
        whoami(&panel, &s).await,
        "sneaky",
        "a new account, not linda's"
    );

    // GitHub's API failing: a clear refusal, not a 5xx.
    let (broken, _) = sign_in(&panel, &gh, "ghost", "en").await;
    assert!(
        matches!(&broken, Ended::Refused(m) if m.contains("did not answer")),
        "{broken:?}"
    );

    // A callback from another browser (no flow cookie of its own): refused.
    gh.lock().unwrap().signing_in = "octocat".into();
    let start = no_redirects()
        .post(format!("{panel}/sso/github"))
        .send()
        .await
        .unwrap();
    let at_github = no_redirects()
        .get(moves_on_to(start).await)
        .send()
        .await
        .unwrap();
    let Ended::Refused(other_browser) = finish(&panel, &location(&at_github), "forged", "en").await
    else {
        panic!()
    };
    assert!(other_browser.contains("another browser"), "{other_browser}");

    let file = users::read_or_empty(&users_file);
    let names: Vec<&str> = file.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["linda", "octocat", "sneaky"]);
    let octocat = file.get("octocat").unwrap();
    assert_eq!(octocat.identities[0].provider, "github");
    assert_eq!(octocat.identities[0].subject, "1001");
    assert_eq!(octocat.email.as_deref(), Some("octocat@users.example"));
    assert_eq!(
        file.get("sneaky").unwrap().email,
        None,
        "unverified: not kept"
    );
    assert_eq!(file.get("linda").unwrap().identities.len(), 1);
    // Linda's password still works.
    assert!(verify(&file, "linda", "lindas-own-password-9"));

    let log = proxy.log_text();
    let users_text = std::fs::read_to_string(&users_file).unwrap();
    for secret in [SECRET, "gho_octocat", "code-1"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(!users_text.contains(secret), "{secret} in users.yaml");
        assert!(!login_page.contains(secret));
    }
}

fn verify(file: &users::UsersFile, name: &str, password: &str) -> bool {
    users::verify_password(&file.get(name).unwrap().password, password)
}

/// With `limits.backend: redis` a sign-in started on one instance finishes on another (behind
/// a load balancer without sticky sessions), once, and Redis holds the flow only sealed.
#[tokio::test(flavor = "multi_thread")]
async fn a_sign_in_started_on_one_instance_finishes_on_another() {
    use flexiproxy_testkit::services::RedisServer;
    let redis = RedisServer::start();
    let gh = Arc::new(Mutex::new(FakeGithub::default()));
    let fake = FakeProvider::start(fake_github(gh.clone())).await;
    let accounts = format!(
        "accounts:\n  registration: open\n  github: {{ client_id: flexi-gh, client_secret: \"{SECRET}\", allowed_orgs: [my-org], web_url: \"{o}\", api_url: \"{o}\" }}\n",
        o = fake.origin()
    );
    let cluster = crate::scale::Cluster::start(2, &redis, None, "2s", &|_| accounts.clone(), &[]);
    let panel = |i: usize| format!("http://127.0.0.1:{}", cluster.admin_ports[i]);

    gh.lock().unwrap().signing_in = "octocat".into();
    let http = no_redirects();
    let start = http
        .post(format!("{}/sso/github", panel(0)))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200);
    assert!(set_cookie(&start, "fp_sso").is_some());
    let at_github = http.get(moves_on_to(start).await).send().await.unwrap();
    let callback = location(&at_github);
    let state = query(&callback)["state"].clone();

    // Redis holds the flow under a hash of its state, sealed with the browser's cookie.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = redis::aio::ConnectionManager::new(client).await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("fp:ssoflow:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(!keys[0].contains(&state));
    let sealed: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let readable = String::from_utf8_lossy(&sealed);
    assert!(
        !readable.contains("github") && !readable.contains("callback"),
        "{readable}"
    );

    // Another browser's cookie cannot finish it (on another instance), and the attempt
    // uses it up.
    let Ended::Refused(wrong_browser) = finish(
        &panel(1),
        &callback.replace(&panel(0), &panel(1)),
        "someone-elses-cookie",
        "en",
    )
    .await
    else {
        panic!()
    };
    assert!(wrong_browser.contains("already used"), "{wrong_browser}");

    // A second sign-in, started on 0 and finished on 1 with the right cookie.
    let start = http
        .post(format!("{}/sso/github", panel(0)))
        .send()
        .await
        .unwrap();
    let flow = set_cookie(&start, "fp_sso").expect("the flow cookie");
    let at_github = http.get(moves_on_to(start).await).send().await.unwrap();
    let callback = location(&at_github).replace(&panel(0), &panel(1));
    let Ended::SignedIn(session) = finish(&panel(1), &callback, &flow, "en").await else {
        panic!("the sign-in did not finish on the other instance")
    };
    // The session is good on both; the same answer again finds nothing on either.
    // Instance 0 reads the users file again for a session of an account it does not know
    // yet (made on 1 a moment ago) rather than ending that session.
    assert_eq!(whoami(&panel(0), &session).await, "octocat");
    assert_eq!(whoami(&panel(1), &session).await, "octocat");
    for i in 0..2 {
        let again = callback.replace(&panel(1), &panel(i));
        let Ended::Refused(used) = finish(&panel(i), &again, &flow, "en").await else {
            panic!()
        };
        assert!(used.contains("already used"), "{used}");
    }
}
