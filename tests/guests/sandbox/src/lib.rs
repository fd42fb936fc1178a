//! Probes the sandbox: the file system, the host's environment, the network. Prints one line per
//! probe — `denied: <probe>: <error>` or `ALLOWED: <probe>` — and one `env: NAME=VALUE` line per
//! variable it can see. Returns `ok` when every probe was denied, `err` listing what was allowed.

// `generate_all`: the 0.3.0 world imports wasi:http, whose WASI interfaces are generated too
// (a component imports only those it uses).
wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

use std::io::Read;
use std::net::{TcpListener, TcpStream, ToSocketAddrs, UdpSocket};

struct Sandbox;

impl Guest for Sandbox {
    fn handle(_batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        for (name, value) in std::env::vars() {
            println!("env: {name}={value}");
        }
        let mut allowed = Vec::new();
        let mut probe = |what: &str, result: Result<String, String>| match result {
            Ok(detail) => {
                println!("ALLOWED: {what}: {detail}");
                allowed.push(what.to_owned());
            }
            Err(error) => println!("denied: {what}: {error}"),
        };
        probe(
            "read /etc/passwd",
            std::fs::File::open("/etc/passwd")
                .and_then(|mut f| {
                    let mut s = String::new();
                    f.read_to_string(&mut s).map(|n| format!("{n} bytes"))
                })
                .map_err(|e| e.to_string()),
        );
        probe(
            "list /",
            std::fs::read_dir("/")
                .map(|_| "listed".into())
                .map_err(|e| e.to_string()),
        );
        probe(
            "list .",
            std::fs::read_dir(".")
                .map(|_| "listed".into())
                .map_err(|e| e.to_string()),
        );
        for var in ["HOME", "PATH"] {
            probe(
                &format!("env {var}"),
                std::env::var(var).map_err(|e| e.to_string()),
            );
        }
        probe(
            "tcp connect 127.0.0.1:7070",
            TcpStream::connect("127.0.0.1:7070")
                .map(|_| "connected".into())
                .map_err(|e| e.to_string()),
        );
        probe(
            "tcp listen 127.0.0.1:0",
            TcpListener::bind("127.0.0.1:0")
                .map(|_| "bound".into())
                .map_err(|e| e.to_string()),
        );
        probe(
            "udp bind 127.0.0.1:0",
            UdpSocket::bind("127.0.0.1:0")
                .map(|_| "bound".into())
                .map_err(|e| e.to_string()),
        );
        probe(
            "dns lookup localhost",
            ("localhost", 80)
                .to_socket_addrs()
                .map(|addrs| format!("{} addresses", addrs.count()))
                .map_err(|e| e.to_string()),
        );
        if allowed.is_empty() {
            Ok(Vec::new())
        } else {
            Err(format!("sandbox allowed: {}", allowed.join(", ")))
        }
    }
}

export!(Sandbox);
