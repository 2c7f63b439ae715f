//! `docs/protocol.md` against the code it documents: the stream tables, the dtype codes, the
//! rejection labels and the counters. A bridge author works from the document alone (issue
//! #20 found it wrong twice), so a stream, label or counter added without its documentation
//! fails here.

use std::collections::BTreeSet;
use twinloop_rig::backbone::telemetry::{CountersSnapshot, REJECT_LABELS};
use twinloop_rig::vocab::protocol::{Dtype, Stream};

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    std::fs::read_to_string(path).expect("docs/protocol.md")
}

/// The text between the heading that starts with `from` and the next heading of any level.
fn section<'a>(doc: &'a str, from: &str) -> &'a str {
    let start = doc
        .find(from)
        .unwrap_or_else(|| panic!("no section {from:?}"));
    let body = &doc[start + from.len()..];
    let end = body.find("\n#").unwrap_or(body.len());
    &body[..end]
}

/// The backquoted words of `text`.
fn quoted(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// `(code, topic)` of every row `| code | `topic` | ...` in a section's table.
fn stream_rows(text: &str) -> BTreeSet<(u16, String)> {
    text.lines()
        .filter_map(|l| {
            let mut cells = l.split('|').map(str::trim).skip(1);
            let code = cells.next()?.parse().ok()?;
            let topic = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            Some((code, topic.to_owned()))
        })
        .collect()
}

#[test]
fn the_stream_tables_list_every_stream_under_its_code_and_topic() {
    let doc = doc();
    let inputs = stream_rows(section(&doc, "### Inputs"));
    let outputs = stream_rows(section(&doc, "### Outputs"));
    let code = |inputs: bool| -> BTreeSet<(u16, String)> {
        Stream::ALL
            .iter()
            .filter(|s| s.is_input() == inputs)
            .map(|s| (s.code(), s.topic().to_owned()))
            .collect()
    };
    assert_eq!(inputs, code(true), "input streams");
    assert_eq!(outputs, code(false), "output streams");
    let max_out = Stream::ALL.iter().map(|s| s.code()).max().unwrap();
    assert!(
        doc.contains(&format!("(streams 16–{max_out})")),
        "§1 names the output range 16–{max_out}"
    );
}

#[test]
fn the_dtype_codes_are_the_codes() {
    let doc = doc();
    let line = doc
        .lines()
        .skip_while(|l| !l.starts_with("**dtype codes**"))
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let mut documented = BTreeSet::new();
    let parts: Vec<&str> = line.split('`').collect();
    for pair in parts[1..].chunks(2) {
        let [code, rest] = pair else { continue };
        let name = rest
            .trim_start()
            .split([',', ' ', ';', '('])
            .next()
            .unwrap();
        documented.insert((code.parse::<u8>().unwrap(), name.to_lowercase()));
    }
    let code: BTreeSet<(u8, String)> = (0..=255u8)
        .filter_map(Dtype::from_code)
        .map(|d| {
            let name = serde_json::to_value(d).unwrap();
            (d as u8, name.as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(documented, code);
}

#[test]
fn the_rejection_table_lists_every_label() {
    let doc = doc();
    let table = section(&doc, "### What is rejected, and under which label");
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|l| {
            let first = l.split('|').nth(1)?.trim();
            Some(first.strip_prefix('`')?.strip_suffix('`')?.to_owned())
        })
        .collect();
    let code: BTreeSet<String> = REJECT_LABELS.iter().map(|l| l.to_string()).collect();
    assert_eq!(documented, code);
}

#[test]
fn the_counter_list_names_every_counter() {
    let doc = doc();
    let documented = quoted(section(&doc, "### Counters in `status` and the summary"));
    let snapshot = serde_json::to_value(CountersSnapshot::default()).unwrap();
    let mut missing = Vec::new();
    for (key, value) in snapshot.as_object().unwrap() {
        if !documented.contains(key) {
            missing.push(key.clone());
        }
        if let serde_json::Value::Object(nested) = value {
            missing.extend(nested.keys().filter(|k| !documented.contains(*k)).cloned());
        }
    }
    assert!(missing.is_empty(), "undocumented counters: {missing:?}");
}

fn bridge_toml() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/bridge.toml");
    std::fs::read_to_string(path).expect("configs/bridge.toml")
}

/// Overlays `top` on `base`, table by table.
fn overlay(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => overlay(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[test]
fn the_bridge_config_loads_and_sends_no_device_times() {
    use twinloop_rig::config::{Config, SourceKind};
    let cfg = Config::from_toml(&bridge_toml(), "configs/bridge.toml").expect("valid");
    assert_eq!(cfg.source.kind, SourceKind::Bridge);
    // The §0 trap: a bridge that sends no sync ticks must not be told its streams are
    // device-clocked.
    let clocks = toml::to_string(&cfg.clocks).expect("clocks encode");
    assert!(!clocks.contains("device"), "bridge.toml clocks: {clocks}");
}

#[test]
fn the_documented_bridge_fields_are_real_fields() {
    use twinloop_rig::config::Config;
    let d = doc();
    let start = d.find("```toml\n").expect("§0 has a toml block") + "```toml\n".len();
    let snippet = &d[start..start + d[start..].find("```").expect("closed block")];
    let mut merged: toml::Table = bridge_toml().parse().expect("bridge.toml parses");
    overlay(&mut merged, snippet.parse().expect("the §0 snippet parses"));
    // Unknown fields are an error, so a misspelt or misplaced documented field fails here.
    Config::from_toml(
        &toml::to_string(&merged).unwrap(),
        "§0 snippet over bridge.toml",
    )
    .unwrap_or_else(|e| panic!("docs/protocol.md §0: {e}"));
}
