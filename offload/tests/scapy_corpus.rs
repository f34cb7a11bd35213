//! The third oracle: the scapy corpus (`tests/corpus/offload.txt`, made by
//! `tests/scapy/gen_corpus.py`, every fact computed by scapy and by the generator's own code and
//! written only where both agreed). Each frame's layout, checksum verdicts, the checksums the
//! crate computes and seeds, and the RSS hashes must match; each segmentation case's segments
//! must come out byte for byte. Counted by group; 0 failures and 0 panics, or the test fails.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use netring::{
    HashProtocolType as P, Layer2Type, Layer3Type, Layer4Type, NetPacketChecksum, NetPacketGso,
    NetPacketLayout, RxChecksumEvaluation as Eval, TxChecksumAction as A,
};
use offload::rss::{Toeplitz, hash_frame};
use offload::rx::{RxOptions, metadata};
use offload::segment::{L4Checksum, Segmenter, fill_l4_checksum};
use offload::tx::{DeviceTx, TxAction, TxRequest, prepare};
use virtio::net::{NetHeader, hdr_flags};

const ALL: DeviceTx = DeviceTx {
    csum: true,
    tso4: true,
    tso6: true,
    ecn: true,
    uso: true,
};

const SW: RxOptions = RxOptions {
    guest_csum: false,
    rsc_ext: false,
    software_verify: true,
};

/// The groups the generator writes, and the least each must hold.
const GROUPS: [(&str, usize); 9] = [
    ("plain", 100),
    ("vlan", 100),
    ("ipv4_options", 100),
    ("ipv6_ext", 150),
    ("fragments", 150),
    ("non_ip", 50),
    ("udp_len", 100),
    ("truncated", 400),
    ("corrupt", 400),
];

fn hex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn layout_text(n: NetPacketLayout) -> String {
    let l2 = match n.layer2_type() {
        Some(Layer2Type::Unspecified) => "none",
        Some(Layer2Type::Ethernet) => "eth",
        other => return format!("bad L2 {other:?}"),
    };
    let l3 = match n.layer3_type() {
        Some(Layer3Type::Unspecified) => "none",
        Some(Layer3Type::Ipv4NoOptions) => "v4",
        Some(Layer3Type::Ipv4WithOptions) => "v4opt",
        Some(Layer3Type::Ipv6NoExtensions) => "v6",
        Some(Layer3Type::Ipv6WithExtensions) => "v6ext",
        other => return format!("bad L3 {other:?}"),
    };
    let l4 = match n.layer4_type() {
        Some(Layer4Type::Unspecified) => "none",
        Some(Layer4Type::Tcp) => "tcp",
        Some(Layer4Type::Udp) => "udp",
        Some(Layer4Type::IpFragment) => "frag",
        Some(Layer4Type::IpNotFragment) => "other",
        None => return "bad L4".into(),
    };
    format!(
        "{l2}/{},{l3}/{},{l4}/{}",
        n.layer2_header_length(),
        n.layer3_header_length(),
        n.layer4_header_length()
    )
}

fn eval(e: Option<Eval>) -> &'static str {
    match e {
        Some(Eval::Valid) => "valid",
        Some(Eval::Invalid) => "invalid",
        Some(Eval::NotChecked) => "notchecked",
        None => "undefined",
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Bytes that differ between `a` and `b`, outside `except`.
fn changed_outside(a: &[u8], b: &[u8], except: std::ops::Range<usize>) -> bool {
    a.len() != b.len()
        || a.iter()
            .zip(b)
            .enumerate()
            .any(|(i, (x, y))| x != y && !except.contains(&i))
}

/// The crate's facts for one frame, in the corpus's words.
fn frame_facts(f: &[u8], t: &Toeplitz) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    let m = metadata(&NetHeader::default(), f, f.len(), SW);
    out.insert("layout", layout_text(m.layout));
    out.insert("ipcsum", eval(m.checksum.rx_layer3()).into());
    out.insert("l4csum", eval(m.checksum.rx_layer4()).into());
    let l3o = m.parsed.map_or(0, |l| l.l3_offset());
    // The IPv4 header checksum asked for alone.
    let mut h = f.to_vec();
    let req = TxRequest {
        checksum: NetPacketChecksum::tx(A::Required, A::Passthrough),
        ..Default::default()
    };
    let ipfill = match prepare(&mut h, f.len(), &req, ALL) {
        Err(_) => "refused".to_string(),
        Ok((l, TxAction::Offload(hdr))) if hdr == NetHeader::default() => {
            if matches!(l.l3, Some(offload::L3::Ipv4 { .. })) {
                if changed_outside(f, &h, l3o + 10..l3o + 12) {
                    "changed other bytes".into()
                } else {
                    format!("{:04x}", be16(&h, l3o + 10))
                }
            } else if h != f {
                "changed bytes".into()
            } else {
                "na".into()
            }
        }
        Ok(other) => format!("{other:?}"),
    };
    out.insert("ipfill", ipfill);
    // The software checksum.
    let mut g = f.to_vec();
    let fill = match fill_l4_checksum(&mut g) {
        Err(_) => "err".to_string(),
        Ok(l) => {
            let at = l.l4_offset() + if l.l4 == offload::L4::Tcp { 16 } else { 6 };
            if changed_outside(f, &g, at..at + 2) {
                "changed other bytes".into()
            } else {
                format!("{:04x}", be16(&g, at))
            }
        }
    };
    out.insert("fill", fill);
    // The TCP/UDP checksum offloaded.
    let mut h = f.to_vec();
    let req = TxRequest {
        checksum: NetPacketChecksum::tx(A::Passthrough, A::Required),
        ..Default::default()
    };
    let tx = match prepare(&mut h, f.len(), &req, ALL) {
        Err(_) => "refused".to_string(),
        Ok((_, TxAction::SoftwareChecksum)) => "software".into(),
        Ok((_, TxAction::Offload(hdr))) if hdr.flags == hdr_flags::NEEDS_CSUM => {
            let at = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset);
            format!(
                "needs/{}/{}/{:04x}",
                hdr.csum_start,
                hdr.csum_offset,
                be16(&h, at)
            )
        }
        Ok(other) => format!("{other:?}"),
    };
    out.insert("tx", tx);
    for (key, types) in [("rss", 0x35u16), ("rssall", 0x3f)] {
        let h = m
            .parsed
            .and_then(|l| hash_frame(t, f, &l, P::from_bits_truncate(types)));
        out.insert(
            key,
            h.map_or("none".into(), |h| {
                format!("{:08x}/{:02x}", h.hash_value, h.protocol().bits())
            }),
        );
    }
    out
}

/// Checks one segmentation case; `Err` says what differs.
fn check_segments(
    frame: &[u8],
    mss: u32,
    lso: &str,
    segs: &[(Vec<u8>, u16)],
) -> Result<(), String> {
    let s = Segmenter::new(frame, mss).map_err(|e| format!("Segmenter::new: {e:?}"))?;
    if s.count() != segs.len() {
        return Err(format!("{} segments, want {}", s.count(), segs.len()));
    }
    let l = *s.layout();
    let field = l.l4_offset() + if l.l4 == offload::L4::Tcp { 16 } else { 6 };
    let mut out = vec![0u8; 70_000];
    for (i, (want, seed)) in segs.iter().enumerate() {
        let n = s
            .write(i, &mut out, L4Checksum::Full)
            .map_err(|e| format!("segment {i}: {e:?}"))?;
        if out[..n] != want[..] {
            return Err(format!(
                "segment {i}: {} want {}",
                to_hex(&out[..n]),
                to_hex(want)
            ));
        }
        let n = s
            .write(i, &mut out, L4Checksum::Seed)
            .map_err(|e| format!("segment {i} seed: {e:?}"))?;
        if changed_outside(&out[..n], want, field..field + 2) || be16(&out, field) != *seed {
            return Err(format!(
                "segment {i} seed {:04x} want {seed:04x}",
                be16(&out, field)
            ));
        }
    }
    // The same packet offloaded to the device (LSO/USO).
    let mut gso = NetPacketGso::default();
    gso.set_mss(mss).map_err(|e| format!("{e:?}"))?;
    let v4 = matches!(l.l3, Some(offload::L3::Ipv4 { .. }));
    let req = TxRequest {
        checksum: NetPacketChecksum::tx(if v4 { A::Required } else { A::Passthrough }, A::Required),
        gso,
        ..Default::default()
    };
    let mut h = frame.to_vec();
    let got = match prepare(&mut h, frame.len(), &req, ALL) {
        Ok((_, TxAction::Offload(hdr))) if hdr.flags == hdr_flags::NEEDS_CSUM => {
            if u32::from(hdr.gso_size) != mss {
                return Err(format!("gso_size {}", hdr.gso_size));
            }
            let at = usize::from(hdr.csum_start) + usize::from(hdr.csum_offset);
            if changed_outside(frame, &h, at..at + 2) {
                return Err("LSO changed bytes other than the checksum field".into());
            }
            format!(
                "{}/{}/{}/{}/{:04x}",
                hdr.gso_type,
                hdr.hdr_len,
                hdr.csum_start,
                hdr.csum_offset,
                be16(&h, at)
            )
        }
        other => format!("{other:?}"),
    };
    if got != lso {
        return Err(format!("lso={got} want {lso}"));
    }
    Ok(())
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Default, Debug)]
struct Tally {
    frames: usize,
    failures: usize,
    panics: usize,
}

#[test]
fn scapy_corpus() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus/offload.txt");
    let text = std::fs::read_to_string(path).expect("the committed corpus");
    let key_hex = text
        .lines()
        .find_map(|l| l.strip_prefix("# key "))
        .expect("key line");
    let key: [u8; 40] = hex(key_hex).try_into().expect("40-byte key");
    let mut t = Box::new(Toeplitz::EMPTY);
    t.set_key(&key);
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    let mut seg_tally = Tally::default();
    let mut segments_total = 0usize;
    let mut shown = Vec::new();
    let mut lines = text.lines().filter(|l| !l.starts_with('#')).peekable();
    while let Some(line) = lines.next() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first().copied() {
            Some("F") => {
                let (group, name, bytes) = (w[1], w[2], hex(w[3]));
                let want: BTreeMap<&str, &str> = w[4..]
                    .iter()
                    .map(|kv| kv.split_once('=').expect("key=value"))
                    .collect();
                let tally = groups.entry(group.to_string()).or_default();
                tally.frames += 1;
                match catch_unwind(AssertUnwindSafe(|| frame_facts(&bytes, &t))) {
                    Err(_) => {
                        tally.panics += 1;
                        shown.push(format!("{name}: PANIC"));
                    }
                    Ok(got) => {
                        let bad: Vec<String> = want
                            .iter()
                            .filter(|(k, v)| got.get(*k).map(String::as_str) != Some(**v))
                            .map(|(k, v)| format!("{k}={} want {v}", got[k]))
                            .collect();
                        if !bad.is_empty() {
                            tally.failures += 1;
                            shown.push(format!("{name} {}: {}", w[3], bad.join(" ")));
                        }
                    }
                }
            }
            Some("S") => {
                let (name, mss, frame) = (w[1], w[2].parse::<u32>().expect("mss"), hex(w[3]));
                let lso = w[4].strip_prefix("lso=").expect("lso");
                let count: usize = w[5].parse().expect("count");
                let segs: Vec<(Vec<u8>, u16)> = (0..count)
                    .map(|_| {
                        let s: Vec<&str> = lines
                            .next()
                            .expect("segment line")
                            .split_whitespace()
                            .collect();
                        (hex(s[0]), u16::from_str_radix(s[1], 16).expect("seed"))
                    })
                    .collect();
                seg_tally.frames += 1;
                segments_total += count;
                match catch_unwind(AssertUnwindSafe(|| check_segments(&frame, mss, lso, &segs))) {
                    Err(_) => {
                        seg_tally.panics += 1;
                        shown.push(format!("{name}: PANIC"));
                    }
                    Ok(Err(e)) => {
                        seg_tally.failures += 1;
                        shown.push(format!("{name}: {e}"));
                    }
                    Ok(Ok(())) => {}
                }
            }
            Some(other) => panic!("corpus line starts with {other:?}"),
            None => {}
        }
    }
    let frames: usize = groups.values().map(|g| g.frames).sum();
    let failures: usize = groups.values().map(|g| g.failures).sum::<usize>() + seg_tally.failures;
    let panics: usize = groups.values().map(|g| g.panics).sum::<usize>() + seg_tally.panics;
    for (g, tally) in &groups {
        eprintln!(
            "{g:>13}: {:5} frames, {} failures, {} panics",
            tally.frames, tally.failures, tally.panics
        );
    }
    eprintln!(
        " segmentation: {:5} cases ({segments_total} segments), {} failures, {} panics",
        seg_tally.frames, seg_tally.failures, seg_tally.panics
    );
    eprintln!("        total: {frames} frames, {failures} failures, {panics} panics");
    for s in shown.iter().take(25) {
        eprintln!("  {s}");
    }
    for (g, least) in GROUPS {
        let n = groups.get(g).map_or(0, |t| t.frames);
        assert!(n >= least, "group {g}: {n} frames, want at least {least}");
    }
    assert!(frames >= 2000, "{frames} frames");
    assert!(
        seg_tally.frames >= 40,
        "{} segmentation cases",
        seg_tally.frames
    );
    assert_eq!((failures, panics), (0, 0), "failures and panics");
}

/// The committed corpus is what the generator makes: with python3 and the pinned scapy
/// installed, `gen_corpus.py --check` regenerates it in memory and compares byte for byte. Without
/// them the corpus test above still runs; this one says SKIPPED and why.
#[test]
fn corpus_regenerates_byte_for_byte() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let version = std::process::Command::new("python3")
        .args(["-c", "import scapy; print(scapy.__version__)"])
        .output();
    let version = match version {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            eprintln!("SKIPPED: python3 with scapy is not installed (README: tests/scapy)");
            return;
        }
    };
    if version != "2.8.0" {
        eprintln!("SKIPPED: scapy {version} installed; the corpus is pinned to scapy 2.8.0");
        return;
    }
    let out = std::process::Command::new("python3")
        .arg(format!("{root}/tests/scapy/gen_corpus.py"))
        .arg("--check")
        .output()
        .expect("run the generator");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        out.status.success(),
        "the generator does not reproduce the corpus: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
