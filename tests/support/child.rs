//! Running one test of the current test binary in a child process, with a clean environment:
//! for scenarios that need a fresh process (the once-only global registry, the environment).

use std::process::Command;

/// Set in the child so that `child_*` tests know they are the child.
pub const CHILD: &str = "SPECTATOR_TEST_CHILD";

/// Runs the test `name` of this binary in a child process with `env` and none of the
/// inherited `SPECTATOR_*`, `NETFLIX_*` or `EC2_*` variables; returns whether it passed and
/// everything it printed.
pub fn run_child(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("SPECTATOR_") || k.starts_with("NETFLIX_") || k.starts_with("EC2_") {
            cmd.env_remove(k);
        }
    }
    cmd.env(CHILD, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("1 passed"), text)
}

/// Whether this process is a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}
