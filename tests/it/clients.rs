//! Real clients for end-to-end tests: the official Python SDKs (in a virtualenv) and Claude
//! Code (from npm), installed on first use by `tests/e2e/setup.sh` into `target/e2e`.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn e2e_dir() -> PathBuf {
    std::env::var_os("FLEXIPROXY_E2E_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/e2e"))
}

/// Runs the setup for `component` once per process (and, through `flock`, once across
/// concurrently running test processes).
pub fn ensure(component: &str) -> Result<(), String> {
    static DONE: Mutex<Vec<(String, Result<(), String>)>> = Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, result)) = done.iter().find(|(c, _)| c == component) {
        return result.clone();
    }
    std::fs::create_dir_all(e2e_dir()).map_err(|e| e.to_string())?;
    let output = Command::new("flock")
        .arg(e2e_dir().join(".setup.lock"))
        .arg(repo_root().join("tests/e2e/setup.sh"))
        .arg(component)
        .output()
        .map_err(|e| format!("cannot run tests/e2e/setup.sh: {e}"))?;
    let result = if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "tests/e2e/setup.sh {component} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    };
    done.push((component.to_owned(), result.clone()));
    result
}

pub fn python() -> PathBuf {
    ensure("python").unwrap_or_else(|e| panic!("{e}"));
    e2e_dir().join("venv/bin/python")
}

/// Runs one of the Python client scripts and parses the JSON it prints.
pub fn run_python(script: &str, args: &[&str]) -> Value {
    let output = Command::new(python())
        .arg(repo_root().join("tests/e2e").join(script))
        .args(args)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}"))
}

/// The official `anthropic` SDK against `base_url`: `mode` is `create` or `stream`.
pub fn anthropic_sdk(base_url: &str, key: &str, mode: &str, request: &Value) -> Value {
    run_python(
        "anthropic_client.py",
        &[base_url, key, mode, &request.to_string()],
    )
}

/// The official `openai` SDK against `base_url` (which ends in `/v1`).
pub fn openai_sdk(base_url: &str, key: &str, mode: &str, request: &Value) -> Value {
    run_python(
        "openai_client.py",
        &[base_url, key, mode, &request.to_string()],
    )
}

/// Waits for a client process with a deadline (a hung client must fail the test, not the CI
/// job); returns (exit code, stdout, stderr).
pub fn wait_bounded(
    mut child: std::process::Child,
    what: &str,
    limit: std::time::Duration,
) -> (i32, String, String) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            return (
                status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            );
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "{what} did not finish within {} s\nstdout:\n{}\nstderr:\n{}",
                limit.as_secs(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
