//! The shipped files agree with the code: `virtionet.inx` declares every keyword the driver reads
//! with the driver's own defaults and ranges, the NetAdapterCx-required keywords with the
//! reference's values, the hardware IDs and enough MSI-X messages, and passes the checks
//! stampinf and infverif would make (`vnet_harness::inf`, each shown to fire on a broken copy);
//! `virtionet.wprp` is a well-formed WPR profile that records the driver's TraceLogging provider
//! with every keyword.

use std::cell::RefCell;
use std::collections::BTreeMap;

use virtionet::config::UserSettings;
use virtionet::kmdf::msix::MAX_QUEUE_PAIRS;
use virtionet::vectors::Vectors;
use vnet_harness::inf::{self, Rule};

fn repo_file(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../").to_string() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The INF's sections: name → lines (comments and blank lines dropped).
fn sections(inf: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in inf::parse(inf).sections {
        out.entry(s.name)
            .or_default()
            .extend(s.lines.into_iter().map(|l| l.text));
    }
    out
}

fn fields(line: &str) -> Vec<String> {
    inf::fields(line)
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
    lines.iter().filter_map(|l| inf::directive(l)).collect()
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
    // ConfidentialMode: 0 Off, 1 Auto (on iff ACCESS_PLATFORM), 2 On.
    use virtionet::config::ConfidentialMode as C;
    let c = |v| with("ConfidentialMode", v).confidential_mode;
    assert_eq!((c(0), c(1), c(2)), (C::Off, C::Auto, C::On));
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
        Vectors::messages_for(MAX_QUEUE_PAIRS)
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

fn findings(text: &str) -> Vec<inf::Finding> {
    inf::check(&inf::parse(text))
}

#[test]
fn inf_passes_the_stampinf_and_infverif_rules() {
    let text = repo_file("virtionet.inx");
    let f = findings(&text);
    assert!(
        f.is_empty(),
        "{}",
        f.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The checker saw what it checks (so an empty result is not an empty INF).
    let parsed = inf::parse(&text);
    assert_eq!(
        parsed.install_sections().first().map(|(s, _)| s.as_str()),
        Some("virtionet_Install.NT")
    );
    assert_eq!(parsed.models_sections(), ["Standard.NT$ARCH$.10.0...22000"]);
}

/// Applies `edit` (text → broken text) and expects exactly `rule` among the findings.
fn broken(what: &str, rule: Rule, edit: impl Fn(&str) -> String) {
    let good = repo_file("virtionet.inx");
    let bad = edit(&good);
    assert_ne!(bad, good, "{what}: the edit changed nothing");
    let f = findings(&bad);
    assert!(
        f.iter().any(|x| x.rule == rule),
        "{what}: expected {rule:?}, found {f:?}"
    );
    assert!(
        f.iter().all(|x| x.rule == rule),
        "{what}: only {rule:?} expected, found {f:?}"
    );
}

fn replace(from: &'static str, to: &'static str) -> impl Fn(&str) -> String {
    move |s: &str| {
        assert!(s.contains(from), "{from:?} not in the INF");
        s.replacen(from, to, 1)
    }
}

#[test]
fn each_inf_rule_fires_on_a_broken_copy() {
    broken(
        "an undefined string token",
        Rule::UndefinedToken,
        replace("%virtionet.ServiceDesc%", "%virtionet.NoSuchDesc%"),
    );
    broken(
        "a string removed from [Strings]",
        Rule::UndefinedToken,
        replace("JumboPacket           = \"Jumbo Packet\"\n", ""),
    );
    broken(
        "a CopyFiles section that does not exist",
        Rule::MissingSection,
        replace(
            "CopyFiles           = virtionet_CopyFiles",
            "CopyFiles           = virtionet_CopyFiles, virtionet_Extra",
        ),
    );
    broken(
        "an AddReg section that does not exist",
        Rule::MissingSection,
        replace("AddReg = virtionet_Msix", "AddReg = virtionet_MsiX2"),
    );
    broken(
        "an AddService section that does not exist",
        Rule::MissingSection,
        replace(
            "AddService = virtionet, 2, virtionet_Service,",
            "AddService = virtionet, 2, virtionet_Svc,",
        ),
    );
    broken(
        "no .Services section",
        Rule::MissingSection,
        replace(
            "[virtionet_Install.NT.Services]",
            "[virtionet_Install.NT.Servics]",
        ),
    );
    broken(
        "a models decoration without its section",
        Rule::MissingSection,
        replace(
            "%ManufacturerName% = Standard, NT$ARCH$.10.0...22000",
            "%ManufacturerName% = Standard, NT$ARCH$.10.0...22000, NTarm64.10.0...22000",
        ),
    );
    broken(
        "Needs without Include",
        Rule::MissingSection,
        replace(
            "BusType             = 5    ; PCIBus",
            "BusType             = 5\nNeeds = PciIoSpaceNotRequired",
        ),
    );
    broken(
        "a copied file missing from SourceDisksFiles",
        Rule::FileNotInSourceDisks,
        replace(
            "virtionet.sys,,,0x100",
            "virtionet.sys,,,0x100\nvirtionet.pdb",
        ),
    );
    broken(
        "a source file on an undeclared disk",
        Rule::FileNotInSourceDisks,
        replace("virtionet.sys = 1,,", "virtionet.sys = 2,,"),
    );
    broken(
        "DestinationDirs not DIRID 13",
        Rule::DestinationNotDriverStore,
        replace("DefaultDestDir = 13", "DefaultDestDir = 12"),
    );
    broken(
        "a per-section destination outside the driver store",
        Rule::DestinationNotDriverStore,
        replace(
            "DefaultDestDir = 13",
            "DefaultDestDir = 13\nvirtionet_CopyFiles = 12,drivers",
        ),
    );
    broken(
        "ServiceBinary under System32\\drivers",
        Rule::Service,
        replace(
            r"ServiceBinary  = %13%\virtionet.sys",
            r"ServiceBinary  = %12%\virtionet.sys",
        ),
    );
    broken(
        "ServiceBinary a file not copied",
        Rule::Service,
        replace(
            r"ServiceBinary  = %13%\virtionet.sys",
            r"ServiceBinary  = %13%\other.sys",
        ),
    );
    broken(
        "a user-mode service type",
        Rule::Service,
        replace(
            "ServiceType    = 1 ; SERVICE_KERNEL_DRIVER",
            "ServiceType    = 16",
        ),
    );
    broken(
        "KmdfService naming another service",
        Rule::Service,
        replace(
            "KmdfService = virtionet, virtionet_WdfSection",
            "KmdfService = virtionet2, virtionet_WdfSection",
        ),
    );
    broken(
        "a required NetAdapterCx keyword missing",
        Rule::NetworkKeyword,
        replace("*HardwareLoopback   = 0    ; FALSE\n", ""),
    );
    broken(
        "a NET_IF_ACCESS_TYPE out of range",
        Rule::NetworkKeyword,
        replace("*AccessType         = 2", "*AccessType         = 7"),
    );
    broken(
        "a BOOLEAN keyword that is not 0 or 1",
        Rule::NetworkKeyword,
        replace("*IfConnectorPresent = 1", "*IfConnectorPresent = 2"),
    );
    broken(
        "an advanced property that is not REG_SZ",
        Rule::NetworkKeyword,
        replace(
            r#"HKR, Ndi\params\*RSS, default,   0, "1""#,
            r#"HKR, Ndi\params\*RSS, default,   0x00010001, 1"#,
        ),
    );
    broken(
        "an enumeration keyword declared as int",
        Rule::NetworkKeyword,
        replace(
            r#"HKR, Ndi\params\*LsoV2IPv4, type,      0, "enum""#,
            r#"HKR, Ndi\params\*LsoV2IPv4, type,      0, "int""#,
        ),
    );
    broken(
        "a duplicate directive",
        Rule::DuplicateKey,
        replace("PnpLockdown = 1", "PnpLockdown = 1\nPnpLockdown = 1"),
    );
    broken(
        "a duplicate registry value",
        Rule::DuplicateKey,
        replace(
            r#"HKR, Ndi\params\VlanID, min,       0, "0""#,
            r#"HKR, Ndi\params\VlanID, min,       0, "0"
HKR, Ndi\params\VlanID, Min,       0, "1""#,
        ),
    );
    broken(
        "a duplicate hardware ID",
        Rule::DuplicateKey,
        replace(
            r"%virtionet.DeviceDesc% = virtionet_Install, PCI\VEN_1AF4&DEV_1000",
            r"%virtionet.DeviceDesc% = virtionet_Install, PCI\VEN_1AF4&DEV_1041",
        ),
    );
    broken(
        "a duplicate section",
        Rule::DuplicateKey,
        replace(
            "[virtionet_WdfSection]",
            "[virtionet_WdfSection]\n[virtionet_Msix]",
        ),
    );
}
