//! Network namespaces the tests create and remove: a tap for QEMU with addresses and static
//! neighbour entries for the "guest", optionally a second namespace behind a veth pair with
//! forwarding and every offload off, so the Linux kernel checksums and segments in software.

use std::process::Command;

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    /// Its name.
    pub name: String,
}

impl NetNs {
    /// Creates a namespace (removing a stale one of the same name).
    pub fn new(name: &str) -> Result<Self, String> {
        let _ = run(&["ip", "netns", "del", name]);
        run(&["ip", "netns", "add", name])?;
        let ns = Self {
            name: name.to_string(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Runs a command inside the namespace and returns its standard output.
    pub fn output(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The kernel's SNMP counter (`nstat -az NAME`), e.g. `TcpInCsumErrors`.
    pub fn counter(&self, name: &str) -> u64 {
        self.output(&["nstat", "-az", name])
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            })
            .unwrap_or(0)
    }

    /// The namespace's file, for `setns`.
    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Addresses of the tap set-up.
pub mod addr {
    /// The host side of the tap.
    pub const HOST4: [u8; 4] = [10, 99, 0, 1];
    /// The guest (the driver under test).
    pub const GUEST4: [u8; 4] = [10, 99, 0, 2];
    /// The far host behind the veth (forwarded traffic).
    pub const FAR4: [u8; 4] = [10, 99, 1, 2];
    /// The host side of the tap, IPv6.
    pub const HOST6: [u8; 16] = [0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    /// The guest, IPv6.
    pub const GUEST6: [u8; 16] = [0xfd, 0, 0, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    /// The far host, IPv6.
    pub const FAR6: [u8; 16] = [0xfd, 0, 0, 0x98, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
}

/// Creates the tap `ifname` (vnet_hdr) in `ns`, with the host addresses and static neighbour
/// entries for the guest's MAC; returns the tap's MAC address.
pub fn setup_tap(ns: &NetNs, ifname: &str, guest_mac: [u8; 6]) -> Result<[u8; 6], String> {
    setup_tap_with(ns, ifname, guest_mac, false)
}

/// [`setup_tap`], with the tap multi-queue (`multi_queue`) when asked: QEMU then opens one
/// queue per virtio queue pair and the kernel spreads flows over them by hash.
pub fn setup_tap_with(
    ns: &NetNs,
    ifname: &str,
    guest_mac: [u8; 6],
    multi_queue: bool,
) -> Result<[u8; 6], String> {
    let mac = guest_mac
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let mut add = vec![
        "ip", "tuntap", "add", "dev", ifname, "mode", "tap", "vnet_hdr",
    ];
    if multi_queue {
        add.push("multi_queue");
    }
    ns.exec(&add)?;
    ns.exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", ifname])?;
    ns.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:99::1/64",
        "dev",
        ifname,
        "nodad",
    ])?;
    ns.exec(&["ip", "link", "set", ifname, "up"])?;
    ns.exec(&[
        "ip",
        "neigh",
        "add",
        "10.99.0.2",
        "lladdr",
        &mac,
        "dev",
        ifname,
    ])?;
    ns.exec(&[
        "ip",
        "-6",
        "neigh",
        "add",
        "fd00:99::2",
        "lladdr",
        &mac,
        "dev",
        ifname,
    ])?;
    let s = ns.output(&["cat", &format!("/sys/class/net/{ifname}/address")])?;
    let mut out = [0u8; 6];
    for (i, p) in s.trim().split(':').enumerate().take(6) {
        out[i] = u8::from_str_radix(p, 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A second namespace reached through a veth pair from `ns`, with forwarding on in `ns` and
/// every offload of the forwarding side turned off, so the kernel segments and checksums there.
pub fn setup_far(ns: &NetNs, far: &NetNs) -> Result<(), String> {
    run(&[
        "ip", "link", "add", "vq0", "netns", &ns.name, "type", "veth", "peer", "name", "vq1",
        "netns", &far.name,
    ])?;
    ns.exec(&["ip", "addr", "add", "10.99.1.1/24", "dev", "vq0"])?;
    ns.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:98::1/64",
        "dev",
        "vq0",
        "nodad",
    ])?;
    ns.exec(&["ip", "link", "set", "vq0", "up"])?;
    ns.exec(&[
        "ethtool", "-K", "vq0", "tso", "off", "gso", "off", "gro", "off", "tx", "off", "sg", "off",
    ])?;
    ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;
    far.exec(&["ip", "addr", "add", "10.99.1.2/24", "dev", "vq1"])?;
    far.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fd00:98::2/64",
        "dev",
        "vq1",
        "nodad",
    ])?;
    far.exec(&["ip", "link", "set", "vq1", "up"])?;
    far.exec(&["ethtool", "-K", "vq1", "gro", "off"])?;
    far.exec(&["ip", "route", "add", "10.99.0.0/24", "via", "10.99.1.1"])?;
    far.exec(&[
        "ip",
        "-6",
        "route",
        "add",
        "fd00:99::/64",
        "via",
        "fd00:98::1",
    ])?;
    Ok(())
}

/// Runs `f` on a new thread that has joined network namespace `ns` (only that thread does).
pub fn spawn_in<T: Send + 'static>(
    ns: &NetNs,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> std::thread::JoinHandle<Result<T, String>> {
    use std::os::fd::AsRawFd;
    let path = ns.path();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        // SAFETY: setns changes only this thread's namespace, with an fd this thread opened.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
        }
        f()
    })
}

/// A serving thread: what it read (a sink), or nothing (a source).
pub type Server = std::thread::JoinHandle<Result<Vec<u8>, String>>;

/// Serves one TCP connection at `at` from a thread that joins namespace `ns`: with `send`
/// `None` it reads to EOF and returns the bytes; with `Some(data)` it writes `data`, shuts
/// its sending side and waits for the peer to close. The receiver is signalled once the socket
/// listens. Every wait is bounded (60 s).
pub fn serve_tcp(
    ns: &NetNs,
    at: std::net::SocketAddr,
    send: Option<Vec<u8>>,
) -> (Server, std::sync::mpsc::Receiver<()>) {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let h = spawn_in(ns, move || {
        let l = std::net::TcpListener::bind(at).map_err(|e| format!("bind {at}: {e}"))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut s, _) = loop {
            match l.accept() {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(format!("accept: {e}")),
            }
        };
        s.set_nonblocking(false).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        if let Some(data) = send {
            s.write_all(&data).map_err(|e| format!("write: {e}"))?;
            s.shutdown(std::net::Shutdown::Write)
                .map_err(|e| e.to_string())?;
            // Until the peer closes, so the data is not reset away.
            let _ = s.read_to_end(&mut got);
            got.clear();
        } else {
            s.read_to_end(&mut got).map_err(|e| format!("read: {e}"))?;
        }
        Ok(got)
    });
    (h, ready)
}
