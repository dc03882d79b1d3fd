//! Forking a process that writes to spectatord: the child must open a socket of its own on
//! its first publish (as spectator-py 1.x does), not write through the parent's.
//!
//! Over UDP the listener sees each sender's port: the parent's socket has one, a socket the
//! child opened has another. A true `fork(2)`, in a test binary of its own; the child is
//! bounded by `alarm(2)` and by the parent, which kills it if it has not exited in time.
#![cfg(unix)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use spectator::Registry;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The sender's port and text of the next datagram.
fn next(listener: &UdpSocket) -> (u16, String) {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = listener.recv_from(&mut buf).unwrap();
    (from.port(), String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn forked_child_opens_its_own_spectatord_socket() {
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let r = Registry::builder()
        .output_location(&format!("udp://{}", listener.local_addr().unwrap()))
        .build();
    r.counter("fork.parent", &[]).increment();
    assert_eq!(runtime().block_on(r.publish()).sent, 1);
    let (parent_port, text) = next(&listener);
    assert_eq!(text, "c:fork.parent,statistic=count:1");

    // SAFETY: the child only runs Rust code of this crate and spectator, then leaves with
    // `_exit` (no destructors or atexit handlers of the parent's state).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        unsafe { libc::alarm(20) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            r.measurements(); // the parent's unpublished deltas: the parent sends them
            r.counter("fork.child", &[]).add(2.0);
            let report = runtime().block_on(r.publish());
            i32::from(report.sent != 1)
        }))
        .unwrap_or(99);
        unsafe { libc::_exit(code) };
    }

    let (child_port, text) = next(&listener);
    let mut status = 0;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            break;
        }
        if Instant::now() > end {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status:#x}"
    );
    assert_eq!(text, "c:fork.child,statistic=count:2");
    assert_ne!(
        child_port, parent_port,
        "the child wrote through the parent's socket"
    );

    // The parent keeps its own socket.
    r.counter("fork.parent", &[]).increment();
    runtime().block_on(r.publish());
    let (port, text) = next(&listener);
    assert_eq!(port, parent_port);
    assert!(
        text.lines().any(|l| l == "c:fork.parent,statistic=count:1"),
        "{text}"
    );
}
