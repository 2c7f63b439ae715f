//! The dependency rule of `rig/src/lib.rs`, enforced: every `crate::` path in a layer's
//! production code names a layer below it, and no other crate of the workspace depends on
//! `rig`. Test modules are exempt (a test may set up a whole session).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What each layer may import, besides itself. `None`: anything (the command line).
fn allowed(layer: &str) -> Option<&'static [&'static str]> {
    Some(match layer {
        "vocab" => &[],
        "backbone" => &["vocab"],
        "sim" => &["vocab"],
        "stages" => &["vocab", "backbone"],
        "config" => &["vocab", "backbone", "stages", "sim"],
        "online" => &["vocab", "backbone", "stages", "sim", "config"],
        "offline" => &["vocab", "backbone", "stages", "sim", "config"],
        "sweep" => &[
            "vocab", "backbone", "stages", "sim", "config", "online", "offline",
        ],
        "cli" => return None,
        other => panic!("rig/src/{other}: a top-level module the rule does not place; add it"),
    })
}

/// The top-level modules every `crate::` path in `src` names (comments skipped).
fn imported_layers(src: &str) -> Vec<String> {
    let code: String = src
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if matches!(before, Some(c) if c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b::{Y, Z}}`: the first segment of each top-level part.
            let (mut depth, mut part_start) = (0usize, true);
            for (k, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => part_start = true,
                    c if part_start && (c.is_alphanumeric() || c == '_') => {
                        out.push(ident(&group[k..]));
                        part_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Production code: an inline `#[cfg(test)] mod tests { .. }` and everything after it dropped
/// (a `mod tests;` file is skipped with the other test files).
fn production(src: &str) -> &str {
    match src.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &src[..i],
        None => src,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every import against the rule: `(file, layer, imported layer)`.
fn violations(src_dir: &Path) -> Vec<(String, String, String)> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let mut bad = Vec::new();
    for f in files {
        let rel = f.strip_prefix(src_dir).unwrap();
        let parts: Vec<_> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let is_test = parts.iter().any(|p| p == "tests" || p == "tests.rs");
        if parts.len() == 1 || is_test {
            continue; // lib.rs, main.rs; test modules
        }
        let layer = parts[0].trim_end_matches(".rs").to_string();
        let Some(ok) = allowed(&layer) else { continue };
        let src = std::fs::read_to_string(&f).unwrap();
        for dep in imported_layers(production(&src)) {
            if dep != layer && !ok.contains(&dep.as_str()) {
                bad.push((rel.display().to_string(), layer.clone(), dep));
            }
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    let listed: Vec<String> = bad
        .iter()
        .map(|(f, layer, dep)| format!("  {f}: {layer} imports {dep}"))
        .collect();
    assert!(
        bad.is_empty(),
        "imports against the dependency rule (rig/src/lib.rs):\n{}",
        listed.join("\n")
    );
}

/// The checker sees what it must: grouped, nested and inline paths, not `$crate` or comments,
/// and an upward import in a copy of the tree fails the rule.
#[test]
fn the_checker_finds_an_upward_import() {
    let got = imported_layers(
        "use crate::{vocab::clock::RigTime, backbone::{ring, frames::Frame}};\n\
         // crate::online::session in a comment\n\
         let x = crate::stages::decide::build_selector(&s);\n\
         $crate::offline::x!();",
    );
    assert_eq!(got, ["vocab", "backbone", "stages"]);
    assert_eq!(
        production("fn a() {}\n#[cfg(test)]\nmod tests {\nuse crate::online::x;\n}"),
        "fn a() {}\n"
    );

    let tmp = std::env::temp_dir().join(format!("twinloop-layers-{}", std::process::id()));
    let stages = tmp.join("stages");
    std::fs::create_dir_all(&stages).unwrap();
    std::fs::write(tmp.join("lib.rs"), "pub mod stages;").unwrap();
    std::fs::write(
        stages.join("mod.rs"),
        "use crate::vocab::clock::RigTime;\nuse crate::online::session::run;\n",
    )
    .unwrap();
    let bad = violations(&tmp);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(
        bad,
        [(
            "stages/mod.rs".to_string(),
            "stages".to_string(),
            "online".to_string()
        )]
    );
}

/// `rig` is the top of the workspace: no other crate depends on it, in its manifest or its
/// code (the end-to-end tests crate excepted: it tests `rig`).
#[test]
fn no_other_crate_imports_rig() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members: Vec<&str> = workspace
        .split("members = [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap()
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    let mut found = BTreeMap::new();
    for m in members {
        if m == "rig" || m == "tests" {
            continue;
        }
        let manifest = std::fs::read_to_string(root.join(m).join("Cargo.toml")).unwrap();
        if manifest.contains("twinloop-rig") {
            found.insert(format!("{m}/Cargo.toml"), "depends on twinloop-rig");
        }
        let mut files = Vec::new();
        rust_files(&root.join(m), &mut files);
        for f in files {
            if std::fs::read_to_string(&f)
                .unwrap()
                .contains("twinloop_rig")
            {
                found.insert(f.display().to_string(), "uses twinloop_rig");
            }
        }
    }
    assert!(found.is_empty(), "crates below rig import it: {found:?}");
}
