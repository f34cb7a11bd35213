//! A reader and a checker for the driver's INF, applying on Linux the rules that stampinf,
//! infverif and the network class installer apply on Windows (those tools do not run here).
//!
//! [`parse`] keeps every section and line with its line number (duplicates included, so that
//! they can be reported); [`check`] returns one [`Finding`] per broken rule. The rules, each
//! with the documentation that states it:
//!
//! * [`Rule::UndefinedToken`] — every `%token%` outside `[Strings]` is defined there; `%%` is a
//!   literal percent sign and a number is a DIRID (learn.microsoft.com, "INF Strings Section").
//! * [`Rule::MissingSection`] — every section a directive names exists: the models sections of
//!   `[Manufacturer]` (with each TargetOSVersion decoration), each model's install section (as
//!   itself or with an `.NT`/`.NT<arch>` platform extension) and its `.Services` section (a
//!   function driver's install needs one), and the sections of `CopyFiles`, `AddReg`, `DelReg`,
//!   `AddService` (service and event-log install sections), `KmdfService`; `Needs` only with an
//!   `Include` ("INF DDInstall Section", "INF AddService Directive", "Specifying WDF Directives
//!   in INF Files").
//! * [`Rule::FileNotInSourceDisks`] — every file a `CopyFiles` section (or `CopyFiles = @file`)
//!   copies is listed in `[SourceDisksFiles]`, whose disk is in `[SourceDisksNames]`
//!   ("INF SourceDisksFiles Section").
//! * [`Rule::DestinationNotDriverStore`] — `[DestinationDirs]` uses DIRID 13 only: the driver
//!   runs from the driver store, as a Windows Driver must ("Run from Driver Store",
//!   "Using a Universal INF File" / infverif's driver-store checks).
//! * [`Rule::Service`] — the `AddService` section has ServiceType 1 (kernel driver), a
//!   StartType, ErrorControl and `ServiceBinary = %13%\<file>`, the binary is one the INF
//!   copies, and `KmdfService` names the same service ("INF AddService Directive", "Specifying
//!   WDF Directives in INF Files").
//! * [`Rule::NetworkKeyword`] — every install section has the network keywords `*IfType`,
//!   `*MediaType`, `*PhysicalMediaType` and NetAdapterCx's required `*IfConnectorPresent`
//!   (BOOLEAN), `*ConnectionType` (NET_IF_CONNECTION_TYPE), `*DirectionType`
//!   (NET_IF_DIRECTION_TYPE), `*AccessType` (NET_IF_ACCESS_TYPE), `*HardwareLoopback` (BOOLEAN),
//!   each a value of its type ("INF files for NetAdapterCx client drivers"); advanced-property
//!   values under `Ndi\params` are REG_SZ (the type NetAdapterCx and NDIS read keywords as) and
//!   the standardized enumeration keywords are of type `enum` ("Enumeration Keywords").
//! * [`Rule::DuplicateKey`] — no section appears twice and no key twice in a section: a directive
//!   key, a `[Strings]` token, a registry value (root, subkey, value name) in an AddReg section,
//!   a file in a CopyFiles section, a hardware ID in a models section.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One line of a section: its 1-based line number in the file and its text without the comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Line number in the file.
    pub number: usize,
    /// The text, comment removed, trimmed.
    pub text: String,
}

/// A section, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name as written.
    pub name: String,
    /// Line number of the `[name]` header.
    pub number: usize,
    /// Its non-empty lines.
    pub lines: Vec<Line>,
}

/// A parsed INF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inf {
    /// Every section in file order (a repeated name is kept twice).
    pub sections: Vec<Section>,
}

/// Parses an INF: `;` outside double quotes starts a comment; blank lines are dropped.
pub fn parse(text: &str) -> Inf {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
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
            sections.push(Section {
                name: name.trim().to_string(),
                number: i + 1,
                lines: Vec::new(),
            });
        } else if let Some(s) = sections.last_mut() {
            s.lines.push(Line {
                number: i + 1,
                text: line.to_string(),
            });
        }
    }
    Inf { sections }
}

/// The comma-separated fields of a value, trimmed and unquoted.
pub fn fields(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|f| f.trim().trim_matches('"').to_string())
        .collect()
}

/// `key = value` split of a line (`None` for lines without `=`).
pub fn directive(line: &str) -> Option<(String, String)> {
    let (k, v) = line.split_once('=')?;
    Some((k.trim().trim_matches('"').to_string(), v.trim().to_string()))
}

impl Inf {
    /// The first section named `name` (INF section names are case-insensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// Whether a section named `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.section(name).is_some()
    }

    /// The `key = value` lines of section `name`, keys as written.
    pub fn directives(&self, name: &str) -> BTreeMap<String, String> {
        self.section(name)
            .map(|s| s.lines.iter().filter_map(|l| directive(&l.text)).collect())
            .unwrap_or_default()
    }

    /// The value of directive `key` (case-insensitive) in section `name`.
    pub fn value(&self, name: &str, key: &str) -> Option<String> {
        self.section(name)?
            .lines
            .iter()
            .filter_map(|l| directive(&l.text))
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// The `[Strings]` tokens, lower-cased.
    fn strings(&self) -> BTreeSet<String> {
        self.sections
            .iter()
            .filter(|s| s.name.eq_ignore_ascii_case("Strings"))
            .flat_map(|s| s.lines.iter())
            .filter_map(|l| directive(&l.text))
            .map(|(k, _)| k.to_lowercase())
            .collect()
    }

    /// The install sections the models sections name, as they exist in the file (with the
    /// platform extension found), with the line naming them.
    pub fn install_sections(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for models in self.models_sections() {
            let Some(s) = self.section(&models) else {
                continue;
            };
            for l in &s.lines {
                let Some((_, v)) = directive(&l.text) else {
                    continue;
                };
                let Some(name) = fields(&v).first().cloned() else {
                    continue;
                };
                let found = [
                    name.clone(),
                    format!("{name}.NT"),
                    format!("{name}.NT$ARCH$"),
                    format!("{name}.NTamd64"),
                ]
                .into_iter()
                .find(|n| self.has(n));
                out.push((found.unwrap_or(name), l.number));
            }
        }
        out
    }

    /// The models section names `[Manufacturer]` gives (decorated).
    pub fn models_sections(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (_, v) in self.directives("Manufacturer") {
            let f = fields(&v);
            let Some((base, decorations)) = f.split_first() else {
                continue;
            };
            if decorations.is_empty() {
                out.push(base.clone());
            }
            for d in decorations {
                out.push(format!("{base}.{d}"));
            }
        }
        out
    }
}

/// The rules [`check`] applies (module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// A `%token%` not defined in `[Strings]`.
    UndefinedToken,
    /// A directive names a section that does not exist.
    MissingSection,
    /// A copied file is not in `[SourceDisksFiles]` (or its disk not in `[SourceDisksNames]`).
    FileNotInSourceDisks,
    /// `[DestinationDirs]` names a directory other than DIRID 13.
    DestinationNotDriverStore,
    /// The service install section or the WDF service directive is wrong.
    Service,
    /// A network or NetAdapterCx keyword is missing or not a value of its type.
    NetworkKeyword,
    /// A section or a key appears twice.
    DuplicateKey,
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// Line number it was found at.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {:?}: {}", self.line, self.rule, self.message)
    }
}

/// Standardized enumeration keywords (learn.microsoft.com, "Enumeration Keywords", and the
/// offload, RSS, RSC and USO keyword pages): their `Ndi\params` type must be `enum`.
pub const ENUMERATION_KEYWORDS: &[&str] = &[
    "*IPChecksumOffloadIPv4",
    "*TCPChecksumOffloadIPv4",
    "*TCPChecksumOffloadIPv6",
    "*UDPChecksumOffloadIPv4",
    "*UDPChecksumOffloadIPv6",
    "*LsoV1IPv4",
    "*LsoV2IPv4",
    "*LsoV2IPv6",
    "*UsoIPv4",
    "*UsoIPv6",
    "*RscIPv4",
    "*RscIPv6",
    "*RSS",
    "*PriorityVLANTag",
    "*InterruptModeration",
    "*FlowControl",
    "*SpeedDuplex",
];

/// The network keywords every install section of a NetAdapterCx INF sets, with the values
/// their types allow: BOOLEAN 0–1; NET_IF_CONNECTION_TYPE dedicated 1, passive 2, demand 3;
/// NET_IF_DIRECTION_TYPE send-receive 0, send-only 1, receive-only 2; NET_IF_ACCESS_TYPE
/// loopback 1, broadcast 2, point-to-point 3, point-to-multipoint 4 (ifdef.h). `*IfType`,
/// `*MediaType` and `*PhysicalMediaType` are required of every network INF.
pub const NETWORK_KEYWORDS: &[(&str, &[u32])] = &[
    ("*IfType", &[]),
    ("*MediaType", &[]),
    ("*PhysicalMediaType", &[]),
    ("*IfConnectorPresent", &[0, 1]),
    ("*ConnectionType", &[1, 2, 3]),
    ("*DirectionType", &[0, 1, 2]),
    ("*AccessType", &[1, 2, 3, 4]),
    ("*HardwareLoopback", &[0, 1]),
];

fn parse_number(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Applies every rule; an empty result means the INF passes.
pub fn check(inf: &Inf) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut find = |rule, line, message: String| {
        out.push(Finding {
            rule,
            line,
            message,
        })
    };

    // Tokens.
    let strings = inf.strings();
    for s in inf
        .sections
        .iter()
        .filter(|s| !s.name.eq_ignore_ascii_case("Strings"))
    {
        for l in &s.lines {
            let mut rest = l.text.as_str();
            while let Some(start) = rest.find('%') {
                let after = &rest[start + 1..];
                let Some(end) = after.find('%') else {
                    find(
                        Rule::UndefinedToken,
                        l.number,
                        format!("unclosed % in {}", l.text),
                    );
                    break;
                };
                let token = &after[..end];
                if !token.is_empty()
                    && token.parse::<u32>().is_err()
                    && !strings.contains(&token.to_lowercase())
                {
                    find(
                        Rule::UndefinedToken,
                        l.number,
                        format!("%{token}% is not defined in [Strings]"),
                    );
                }
                rest = &after[end + 1..];
            }
        }
    }

    // Sections named by directives.
    for m in inf.models_sections() {
        if !inf.has(&m) {
            let line = inf.section("Manufacturer").map_or(0, |s| s.number);
            find(
                Rule::MissingSection,
                line,
                format!("[Manufacturer] names models section [{m}], which does not exist"),
            );
        }
    }
    let installs = inf.install_sections();
    for (name, line) in &installs {
        if !inf.has(name) {
            find(
                Rule::MissingSection,
                *line,
                format!("install section [{name}] does not exist"),
            );
        } else if !inf.has(&format!("{name}.Services")) {
            find(
                Rule::MissingSection,
                *line,
                format!(
                    "install section [{name}] has no [{name}.Services] (a function driver needs one)"
                ),
            );
        }
    }
    let mut has_include = false;
    let mut needs_line = None;
    let mut copied_files: Vec<(String, usize)> = Vec::new();
    let mut copy_sections: BTreeSet<String> = BTreeSet::new();
    let mut addreg_sections: BTreeSet<String> = BTreeSet::new();
    let mut services: Vec<(String, usize, String)> = Vec::new();
    let mut kmdf_services: Vec<(String, usize)> = Vec::new();
    for s in &inf.sections {
        for l in &s.lines {
            let Some((key, value)) = directive(&l.text) else {
                continue;
            };
            let f = fields(&value);
            let must_exist = |name: &str, what: &str, out: &mut Vec<(String, usize)>| {
                if !name.is_empty() && !inf.has(name) {
                    out.push((
                        format!("{what} names [{name}], which does not exist"),
                        l.number,
                    ));
                }
            };
            let mut missing = Vec::new();
            match key.to_ascii_lowercase().as_str() {
                "copyfiles" => {
                    for n in &f {
                        if let Some(file) = n.strip_prefix('@') {
                            copied_files.push((file.to_string(), l.number));
                        } else {
                            must_exist(n, "CopyFiles", &mut missing);
                            copy_sections.insert(n.to_lowercase());
                        }
                    }
                }
                "addreg" | "delreg" => {
                    for n in &f {
                        must_exist(n, &key, &mut missing);
                        addreg_sections.insert(n.to_lowercase());
                    }
                }
                "addservice" => {
                    if let Some(sec) = f.get(2) {
                        must_exist(sec, "AddService", &mut missing);
                        services.push((
                            f.first().cloned().unwrap_or_default(),
                            l.number,
                            sec.clone(),
                        ));
                    } else {
                        missing.push((
                            "AddService without a service install section".into(),
                            l.number,
                        ));
                    }
                    if let Some(ev) = f.get(3) {
                        must_exist(ev, "AddService (event log)", &mut missing);
                    }
                }
                "kmdfservice" => {
                    if let Some(sec) = f.get(1) {
                        must_exist(sec, "KmdfService", &mut missing);
                    }
                    kmdf_services.push((f.first().cloned().unwrap_or_default(), l.number));
                }
                "include" => has_include = true,
                "needs" => needs_line = Some(l.number),
                _ => {}
            }
            for (m, n) in missing {
                find(Rule::MissingSection, n, m);
            }
        }
    }
    if let (Some(n), false) = (needs_line, has_include) {
        find(
            Rule::MissingSection,
            n,
            "Needs without Include: the sections it names cannot be found".into(),
        );
    }

    // Files copied, source disks.
    for s in inf
        .sections
        .iter()
        .filter(|s| copy_sections.contains(&s.name.to_lowercase()))
    {
        for l in &s.lines {
            if let Some(file) = fields(&l.text).first() {
                copied_files.push((file.clone(), l.number));
            }
        }
    }
    let disks: BTreeSet<String> = inf.directives("SourceDisksNames").into_keys().collect();
    let source_files = inf.directives("SourceDisksFiles");
    for (file, line) in &copied_files {
        match source_files
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(file))
        {
            None => find(
                Rule::FileNotInSourceDisks,
                *line,
                format!("{file} is copied but not in [SourceDisksFiles]"),
            ),
            Some((_, v)) => {
                let disk = fields(v).first().cloned().unwrap_or_default();
                if !disks.contains(&disk) {
                    find(
                        Rule::FileNotInSourceDisks,
                        *line,
                        format!("{file} is on disk {disk:?}, which [SourceDisksNames] lacks"),
                    );
                }
            }
        }
    }

    // Destination directories.
    match inf.section("DestinationDirs") {
        None => find(
            Rule::DestinationNotDriverStore,
            0,
            "no [DestinationDirs]: files go to the default directory, not DIRID 13".into(),
        ),
        Some(s) => {
            for l in &s.lines {
                let dirid = directive(&l.text)
                    .and_then(|(_, v)| fields(&v).first().cloned())
                    .unwrap_or_default();
                if dirid != "13" {
                    find(
                        Rule::DestinationNotDriverStore,
                        l.number,
                        format!("{} is not DIRID 13 (run from the driver store)", l.text),
                    );
                }
            }
        }
    }

    // The service.
    if services.is_empty() {
        find(Rule::Service, 0, "no AddService directive".into());
    }
    let copied: BTreeSet<String> = copied_files.iter().map(|(f, _)| f.to_lowercase()).collect();
    for (name, line, sec) in services.iter().filter(|(_, _, sec)| inf.has(sec)) {
        let d = |k: &str| inf.value(sec, k);
        if d("ServiceType").and_then(|v| parse_number(&v)) != Some(1) {
            find(
                Rule::Service,
                *line,
                format!("[{sec}] ServiceType is not 1 (kernel driver)"),
            );
        }
        if d("StartType")
            .and_then(|v| parse_number(&v))
            .is_none_or(|v| v > 4)
        {
            find(
                Rule::Service,
                *line,
                format!("[{sec}] has no valid StartType"),
            );
        }
        if d("ErrorControl")
            .and_then(|v| parse_number(&v))
            .is_none_or(|v| v > 3)
        {
            find(
                Rule::Service,
                *line,
                format!("[{sec}] has no valid ErrorControl"),
            );
        }
        match d("ServiceBinary") {
            None => find(
                Rule::Service,
                *line,
                format!("[{sec}] has no ServiceBinary"),
            ),
            Some(b) => match b.strip_prefix(r"%13%\") {
                None => find(
                    Rule::Service,
                    *line,
                    format!("[{sec}] ServiceBinary {b} is not under %13% (the driver store)"),
                ),
                Some(file) if !copied.contains(&file.to_lowercase()) => find(
                    Rule::Service,
                    *line,
                    format!("[{sec}] ServiceBinary {file} is not a file the INF copies"),
                ),
                Some(_) => {}
            },
        }
        if !kmdf_services
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            find(
                Rule::Service,
                *line,
                format!("no KmdfService directive names service {name}"),
            );
        }
    }
    if kmdf_services.is_empty() {
        find(
            Rule::Service,
            0,
            "no KmdfService directive (a KMDF driver needs one)".into(),
        );
    }
    for (name, line) in &kmdf_services {
        if !services
            .iter()
            .any(|(s, _, _)| s.eq_ignore_ascii_case(name))
        {
            find(
                Rule::Service,
                *line,
                format!("KmdfService names {name}, which no AddService installs"),
            );
        }
    }

    // Network and NetAdapterCx keywords.
    for (name, line) in &installs {
        if !inf.has(name) {
            continue;
        }
        for (kw, allowed) in NETWORK_KEYWORDS {
            match inf.value(name, kw) {
                None => find(Rule::NetworkKeyword, *line, format!("[{name}] lacks {kw}")),
                Some(v) => match parse_number(&v) {
                    Some(n) if allowed.is_empty() || allowed.contains(&n) => {}
                    _ => find(
                        Rule::NetworkKeyword,
                        *line,
                        format!("[{name}] {kw} = {v} is not a value of its type {allowed:?}"),
                    ),
                },
            }
        }
    }
    for s in inf
        .sections
        .iter()
        .filter(|s| addreg_sections.contains(&s.name.to_lowercase()))
    {
        for l in &s.lines {
            let f = fields(&l.text);
            let (Some(sub), Some(value_name)) = (f.get(1), f.get(2)) else {
                continue;
            };
            let Some(kw) = sub
                .strip_prefix(r"Ndi\params\")
                .or_else(|| sub.strip_prefix(r"Ndi\Params\"))
            else {
                continue;
            };
            let flags = f.get(3).map(String::as_str).unwrap_or("");
            if !(flags.is_empty() || parse_number(flags) == Some(0)) {
                find(
                    Rule::NetworkKeyword,
                    l.number,
                    format!("{sub} {value_name}: flags {flags} is not REG_SZ"),
                );
            }
            if value_name.eq_ignore_ascii_case("type")
                && ENUMERATION_KEYWORDS
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(kw))
                && f.get(4).is_none_or(|t| t != "enum")
            {
                find(
                    Rule::NetworkKeyword,
                    l.number,
                    format!("{kw} is an enumeration keyword, declared as {:?}", f.get(4)),
                );
            }
        }
    }

    // Duplicates.
    let mut seen_sections: BTreeMap<String, usize> = BTreeMap::new();
    let models: BTreeSet<String> = inf
        .models_sections()
        .iter()
        .map(|m| m.to_lowercase())
        .collect();
    for s in &inf.sections {
        let lname = s.name.to_lowercase();
        if let Some(first) = seen_sections.insert(lname.clone(), s.number) {
            find(
                Rule::DuplicateKey,
                s.number,
                format!("section [{}] appears twice (first at line {first})", s.name),
            );
        }
        let mut keys: BTreeMap<String, usize> = BTreeMap::new();
        for l in &s.lines {
            let key = if models.contains(&lname) {
                // A models line's key is the device description: the hardware ID must be unique.
                directive(&l.text).and_then(|(_, v)| fields(&v).get(1).cloned())
            } else if addreg_sections.contains(&lname) {
                let f = fields(&l.text);
                Some(format!(
                    "{}, {}, {}",
                    f.first().cloned().unwrap_or_default(),
                    f.get(1).cloned().unwrap_or_default(),
                    f.get(2).cloned().unwrap_or_default()
                ))
            } else if copy_sections.contains(&lname) {
                fields(&l.text).first().cloned()
            } else {
                directive(&l.text).map(|(k, _)| k)
            };
            let Some(key) = key else {
                continue;
            };
            if let Some(first) = keys.insert(key.to_lowercase(), l.number) {
                find(
                    Rule::DuplicateKey,
                    l.number,
                    format!("[{}] has {key} twice (first at line {first})", s.name),
                );
            }
        }
    }
    out.sort_by_key(|f| (f.rule, f.line));
    out
}
