//! The shipped files agree with the code: `virtionet.inx` declares every keyword the driver reads
//! with the driver's own defaults and ranges, the NetAdapterCx-required keywords with the
//! reference's values, the hardware IDs and enough MSI-X messages; `virtionet.wprp` is a
//! well-formed WPR profile that records the driver's TraceLogging provider with every keyword.

use std::cell::RefCell;
use std::collections::BTreeMap;

use virtionet::config::UserSettings;
use virtionet::kmdf::msix::{MAX_QUEUE_PAIRS, MsixPlan};

fn repo_file(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../").to_string() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The INF's sections: name → lines (comments and blank lines dropped).
fn sections(inf: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for raw in inf.lines() {
        // A ';' outside quotes starts a comment.
        let mut line = String::new();
        let mut quoted = false;
        for c in raw.chars() {
            match c {
                '"' => quoted = !quoted,
                ';' if !quoted => break,
                _ => {}
            }
            line.push(c);
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            out.entry(current.clone()).or_default();
        } else {
            out.entry(current.clone())
                .or_default()
                .push(line.to_string());
        }
    }
    out
}

fn fields(line: &str) -> Vec<String> {
    line.split(',')
        .map(|f| f.trim().trim_matches('"').to_string())
        .collect()
}

/// One advanced property: its `Ndi\params\<kw>` values and enum choices.
#[derive(Debug, Default)]
struct Param {
    values: BTreeMap<String, String>,
    choices: Vec<u32>,
}

fn advanced(inf: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Param> {
    let mut out: BTreeMap<String, Param> = BTreeMap::new();
    for line in &inf["virtionet_Advanced"] {
        let f = fields(line);
        assert_eq!(f[0], "HKR", "{line}");
        let key = f[1].strip_prefix(r"Ndi\params\").expect(line);
        if let Some(kw) = key.strip_suffix(r"\enum") {
            let v: u32 = f[2].parse().expect(line);
            out.entry(kw.to_string()).or_default().choices.push(v);
        } else {
            out.entry(key.to_string())
                .or_default()
                .values
                .insert(f[2].to_lowercase(), f[4].clone());
        }
    }
    out
}

/// `key = value` lines of a section.
fn directives(lines: &[String]) -> BTreeMap<String, String> {
    lines
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The keywords the driver reads, in the order it asks.
fn keywords_read() -> Vec<String> {
    let asked = RefCell::new(Vec::new());
    let _ = UserSettings::from_keywords(
        |k| {
            asked.borrow_mut().push(k.to_string());
            None
        },
        None,
    );
    asked.into_inner()
}

fn with(kw: &str, v: u32) -> UserSettings {
    UserSettings::from_keywords(|k| (k == kw).then_some(v), None)
}

#[test]
fn inf_declares_what_the_driver_reads_with_its_defaults_and_ranges() {
    let inf = sections(&repo_file("virtionet.inx"));
    let params = advanced(&inf);
    let read = keywords_read();
    assert!(read.len() >= 15, "{read:?}");
    for kw in &read {
        let p = params
            .get(kw)
            .unwrap_or_else(|| panic!("the driver reads {kw}, the INF does not declare it"));
        let ty = p.values.get("type").map(String::as_str);
        let default: u32 = p.values["default"].parse().expect(kw);
        // The INF's default gives the driver's own default.
        assert_eq!(
            with(kw, default),
            UserSettings::default(),
            "{kw} default {default}"
        );
        match ty {
            Some("enum") => {
                assert!(p.choices.contains(&default), "{kw}: default is a choice");
                for &c in &p.choices {
                    // Every choice is taken as given (no choice is silently replaced).
                    let s = with(kw, c);
                    let again = with(kw, c);
                    assert_eq!(s, again);
                }
            }
            Some("int") => {
                let min: u32 = p.values["min"].parse().expect(kw);
                let max: u32 = p.values["max"].parse().expect(kw);
                assert!(min <= default && default <= max, "{kw}");
                // Out-of-range registry values land inside the INF's range, as if the range end
                // had been set — except a VLAN id, where an invalid one means "no VLAN".
                let above = if kw == "VlanID" {
                    UserSettings::default()
                } else {
                    with(kw, max)
                };
                assert_eq!(with(kw, max.saturating_add(1000)), above, "{kw} above max");
                if min > 0 {
                    assert_eq!(with(kw, min - 1), with(kw, min), "{kw} below min");
                }
            }
            other => panic!("{kw}: type {other:?}"),
        }
    }
    // NetworkAddress is read separately (as a link-layer address) and is optional.
    let na = &params["NetworkAddress"];
    assert_eq!(na.values["type"], "edit");
    assert_eq!(na.values["limittext"], "12");
    assert_eq!(na.values["optional"], "1");
    // Nothing in the INF that nobody reads: the driver, or NetAdapterCx itself (reference §5.2).
    const READ_BY_NETADAPTERCX: [&str; 2] = ["*RSS", "*NumRssQueues"];
    for kw in params.keys() {
        assert!(
            read.contains(kw)
                || kw == "NetworkAddress"
                || READ_BY_NETADAPTERCX.contains(&kw.as_str()),
            "the INF declares {kw}, which the driver never reads"
        );
    }
    // The RSS queue choices never exceed the queues the driver runs.
    let nq = &params["*NumRssQueues"];
    assert!(
        nq.choices
            .iter()
            .all(|&q| q <= u32::from(MAX_QUEUE_PAIRS) && q.is_power_of_two())
    );
}

#[test]
fn inf_enum_values_match_the_core_meaning() {
    // The checksum keywords: 0 off, 1 Tx, 2 Rx, 3 both (the standardized values).
    let d = |v| with("*TCPChecksumOffloadIPv4", v).tcp4_checksum;
    assert_eq!((d(0).tx, d(0).rx), (false, false));
    assert_eq!((d(1).tx, d(1).rx), (true, false));
    assert_eq!((d(2).tx, d(2).rx), (false, true));
    assert_eq!((d(3).tx, d(3).rx), (true, true));
    assert_eq!(with("*PriorityVLANTag", 2).priority_vlan_tag, 2);
    assert!(!with("*LsoV2IPv6", 0).lso_v6);
    assert_eq!(with("VlanID", 4095).vlan_id, 4095);
    assert_eq!(
        with("VlanID", 4096).vlan_id,
        0,
        "an invalid VLAN id means none"
    );
}

#[test]
fn inf_has_the_netadaptercx_and_network_keywords_and_ids() {
    let inf = sections(&repo_file("virtionet.inx"));
    let version = directives(&inf["Version"]);
    assert_eq!(version["Class"], "Net");
    assert_eq!(
        version["ClassGUID"].to_lowercase(),
        "{4d36e972-e325-11ce-bfc1-08002be10318}"
    );
    let install = directives(&inf["virtionet_Install.NT"]);
    for (k, v) in [
        ("*IfType", "6"),
        ("*MediaType", "0"),
        ("*PhysicalMediaType", "14"),
        ("*IfConnectorPresent", "1"),
        ("*ConnectionType", "1"),
        ("*DirectionType", "0"),
        ("*AccessType", "2"),
        ("*HardwareLoopback", "0"),
        ("BusType", "5"),
    ] {
        assert_eq!(install.get(k).map(String::as_str), Some(v), "{k}");
    }
    let models = inf
        .iter()
        .find(|(name, _)| name.starts_with("Standard.NT$ARCH$"))
        .expect("models section");
    let ids: Vec<String> = models
        .1
        .iter()
        .map(|l| fields(l).last().unwrap().clone())
        .collect();
    assert!(
        ids.contains(&r"PCI\VEN_1AF4&DEV_1041".to_string()),
        "{ids:?}"
    );
    assert!(
        ids.contains(&r"PCI\VEN_1AF4&DEV_1000".to_string()),
        "{ids:?}"
    );
    let wdf = directives(&inf["virtionet_Install.NT.Wdf"]);
    assert_eq!(wdf["KmdfService"], "virtionet, virtionet_WdfSection");
    assert_eq!(
        directives(&inf["virtionet_WdfSection"])["KmdfLibraryVersion"],
        "$KMDFVERSION$"
    );
    let msix = &inf["virtionet_Msix"];
    let limit = msix
        .iter()
        .map(|l| fields(l))
        .find(|f| f.get(2).is_some_and(|k| k == "MessageNumberLimit"))
        .expect("MessageNumberLimit");
    assert_eq!(
        limit[4].parse::<u32>().unwrap(),
        MsixPlan::messages_for(MAX_QUEUE_PAIRS)
    );
    let supported = msix
        .iter()
        .map(|l| fields(l))
        .find(|f| f.get(2).is_some_and(|k| k == "MSISupported"))
        .expect("MSISupported");
    assert_eq!(supported[4], "1");
}

#[test]
fn wpr_profile_records_the_provider_with_every_keyword() {
    let text = repo_file("virtionet.wprp");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "WindowsPerformanceRecorder");
    let provider = root
        .descendants()
        .find(|n| n.has_tag_name("EventProvider"))
        .expect("EventProvider");
    assert_eq!(
        provider.attribute("Name"),
        Some(virtionet::trace::PROVIDER_GUID)
    );
    let id = provider.attribute("Id").unwrap();
    let mask = provider
        .descendants()
        .find(|n| n.has_tag_name("Keyword"))
        .and_then(|k| k.attribute("Value"))
        .map(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap())
        .unwrap();
    use virtionet::trace::keyword::*;
    for k in [LIFECYCLE, LINK, FAULT, COUNTERS] {
        assert_eq!(mask & k, k, "keyword {k:#x} not recorded");
    }
    // Every profile that collects events refers to the provider and to declared collectors.
    let ids: Vec<&str> = root
        .descendants()
        .filter_map(|n| n.attribute("Id"))
        .collect();
    let profiles: Vec<_> = root
        .descendants()
        .filter(|n| n.has_tag_name("Profile"))
        .collect();
    assert!(profiles.len() >= 2);
    for p in &profiles {
        if let Some(base) = p.attribute("Base") {
            assert!(ids.contains(&base), "Base {base}");
            continue;
        }
        let refs: Vec<&str> = p
            .descendants()
            .filter(|n| n.tag_name().name().ends_with("Id") && n.has_attribute("Value"))
            .map(|n| n.attribute("Value").unwrap())
            .collect();
        assert!(
            refs.contains(&id),
            "profile {:?} lacks the provider",
            p.attribute("Id")
        );
        for r in refs {
            assert!(ids.contains(&r), "undeclared {r}");
        }
    }
}
