//! The crate's layers, checked on its source: which top-level module of `src/` may use which
//! (ARCHITECTURE.md, "Layers"), and how long a source file may grow.
//!
//! A use is a path through `crate::` (or `super::` up to the crate root) that names another
//! top-level module, in a `use` or anywhere in code. Comments and string literals do not
//! count. Code only tests compile may use anything: `tests.rs` files, files under a `tests`
//! directory, and `#[cfg(test)]` modules, inline or in their own file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a top-level module may use.
enum May {
    Use(&'static [&'static str]),
    UseAllBut(&'static [&'static str]),
}

/// Every top-level module, lowest layer first, and what it may use.
const LAYERS: &[(&str, May)] = &[
    ("clock", May::Use(&[])),
    ("model", May::Use(&[])),
    ("sched", May::Use(&["model"])),
    ("wire", May::Use(&["model"])),
    ("net", May::Use(&["model", "wire"])),
    ("sync", May::Use(&["model", "wire"])),
    ("store", May::Use(&["model", "wire", "sync", "clock"])),
    // `sync`: the config holds the policy of the link to the parent (sync::link::LinkPolicy).
    // `sched`: the config checks the server's time zone.
    ("config", May::Use(&["model", "sched", "net", "sync"])),
    ("server", May::UseAllBut(&["agent", "cli", "fuzzing"])),
    ("agent", May::UseAllBut(&["server", "cli", "fuzzing"])),
    ("cli", May::UseAllBut(&["fuzzing"])),
    // The checks of the fuzz targets: the decoders of every layer, as the runtimes call them.
    ("fuzzing", May::UseAllBut(&["server", "cli"])),
];

/// Uses against the layers, each until the change that removes it lands; no other.
const EXCEPTIONS: &[(&str, &str)] = &[];

/// The most lines a source file may have, tests aside.
const MAX_LINES: usize = 800;

/// Longer files, each until it is split; none now.
const LONG_FILES: &[&str] = &[];

fn modules() -> Vec<&'static str> {
    LAYERS.iter().map(|(module, _)| *module).collect()
}

/// The modules `module` may use, exceptions aside.
fn allowed(module: &str) -> BTreeSet<&'static str> {
    let may = LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, may)| may)
        .unwrap_or_else(|| panic!("{module} has no layer in LAYERS"));
    match may {
        May::Use(list) => list.iter().copied().collect(),
        May::UseAllBut(but) => modules()
            .into_iter()
            .filter(|m| *m != module && !but.contains(m))
            .collect(),
    }
}

/// One use of a top-level module by another, where it is written.
#[derive(Debug, PartialEq, Eq)]
struct Use {
    file: String,
    line: usize,
    from: String,
    to: String,
}

#[test]
fn every_module_has_a_layer_and_the_layers_have_no_cycle() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<String> = strip(&lib)
        .split(';')
        .filter_map(|item| {
            let mut words = item.split_whitespace().rev();
            let name = words.next()?;
            (words.next() == Some("mod")).then(|| name.to_string())
        })
        .collect();
    let layered: BTreeSet<String> = modules().into_iter().map(String::from).collect();
    assert_eq!(declared, layered, "the modules of src/lib.rs and of LAYERS");
    for module in modules() {
        for used in allowed(module) {
            assert!(
                layered.contains(used),
                "{module} may use {used}, which is no module"
            );
        }
    }
    for (from, to) in EXCEPTIONS {
        assert!(
            !allowed(from).contains(to),
            "{from} -> {to} is both allowed and an exception"
        );
    }
    // Depth-first from each module: no module may reach itself.
    fn reach(from: &'static str, to: &str, path: &mut Vec<&'static str>) {
        for next in allowed(from) {
            assert!(next != to, "the layers have a cycle: {path:?} -> {next}");
            if !path.contains(&next) {
                path.push(next);
                reach(next, to, path);
                path.pop();
            }
        }
    }
    for module in modules() {
        reach(module, module, &mut vec![module]);
    }
}

#[test]
fn modules_use_only_the_layers_below_them() {
    let wrong: Vec<String> = crate_uses()
        .into_iter()
        .filter(|u| {
            !allowed(&u.from).contains(u.to.as_str())
                && !EXCEPTIONS.contains(&(u.from.as_str(), u.to.as_str()))
        })
        .map(|u| format!("{}:{}: {} uses {}", u.file, u.line, u.from, u.to))
        .collect();
    assert!(
        wrong.is_empty(),
        "uses against the layers (see LAYERS in tests/layers.rs and ARCHITECTURE.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn each_exception_is_still_needed() {
    let uses = crate_uses();
    for (from, to) in EXCEPTIONS {
        assert!(
            uses.iter().any(|u| u.from == *from && u.to == *to),
            "{from} no longer uses {to}: remove the exception from EXCEPTIONS"
        );
    }
}

#[test]
fn no_source_file_is_too_long() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|s| !s.named_as_tests)
        .map(|s| (s.lines, s.file))
        .filter(|(lines, file)| *lines > MAX_LINES && !LONG_FILES.contains(&file.as_str()))
        .map(|(lines, file)| format!("{file}: {lines} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines; split them by purpose:\n{}",
        long.join("\n")
    );
}

/// The store's files use each other one way: its tables and keys sit in `schema.rs`, and the
/// operations that span tables sit above the ones they call.
#[test]
fn the_store_s_modules_have_no_cycle() {
    let dir = src().join("store");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".rs").map(String::from)
        })
        .filter(|stem| !matches!(stem.as_str(), "mod" | "tests"))
        .collect();
    files.sort();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap();
        let code = strip(&text);
        let blocks = inline_modules(&code);
        let mut at = 0;
        while let Some(found) = code[at..].find("super") {
            let start = at + found;
            at = start + "super".len();
            if word_at(&code, start) != Some("super") || code[..start].trim_end().ends_with("::") {
                continue;
            }
            let in_block = blocks
                .iter()
                .any(|(_, _, open, close)| *open < start && start < *close);
            let Some(next) = path_step(&code, at) else {
                continue;
            };
            if in_block || word_at(&code, next) == Some("super") {
                continue;
            }
            for name in first_segments(&code, next) {
                if files.contains(&name) && &name != file {
                    edges.insert((file.clone(), name));
                }
            }
        }
    }
    assert!(
        !edges.is_empty(),
        "the reading found no use between the store's files"
    );
    // Depth-first from each file: none may reach itself.
    fn reach(
        edges: &BTreeSet<(String, String)>,
        from: &str,
        to: &str,
        seen: &mut Vec<String>,
    ) -> bool {
        for (a, b) in edges {
            if a == from && !seen.contains(b) {
                if b == to {
                    return true;
                }
                seen.push(b.clone());
                if reach(edges, b, to, seen) {
                    return true;
                }
            }
        }
        false
    }
    let cycles: Vec<&String> = files
        .iter()
        .filter(|f| reach(&edges, f, f, &mut Vec::new()))
        .collect();
    assert!(
        cycles.is_empty(),
        "store files in a cycle: {cycles:?}; uses: {edges:?}"
    );
}

// ---- Reading the source ----

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// A file of `src/`.
struct Source {
    /// Its path from the crate's directory, with '/'.
    file: String,
    /// The module path of its code: `src/model/scope/tests.rs` is `model::scope::tests`.
    module: Vec<String>,
    /// A `tests.rs` or a file under a `tests` directory.
    named_as_tests: bool,
    lines: usize,
    text: String,
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&src(), &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(src()).unwrap();
            let parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            let text = std::fs::read_to_string(&path).unwrap();
            Source {
                file: format!("src/{}", parts.join("/")),
                module: module_path(&parts),
                named_as_tests: parts.last().is_some_and(|f| f == "tests.rs")
                    || parts[..parts.len() - 1].iter().any(|d| d == "tests"),
                lines: text.lines().count(),
                text,
            }
        })
        .collect()
}

/// `["model", "scope.rs"]` is `model::scope`; `mod.rs`, `lib.rs` and `main.rs` are their
/// directory's module.
fn module_path(parts: &[String]) -> Vec<String> {
    let mut module: Vec<String> = parts.to_vec();
    let file = module.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        module.push(stem.to_string());
    }
    module
}

/// Every use of one top-level module by another in the crate (`src/main.rs` is the binary,
/// which uses the library as `canopy::`), outside code only tests compile.
fn crate_uses() -> Vec<Use> {
    let sources = sources();
    // The modules declared `#[cfg(test)] mod name;`, whose files only tests compile.
    let mut test_modules: Vec<Vec<String>> = Vec::new();
    for source in &sources {
        for (module, test, _) in modules_declared(&source.module, &strip(&source.text)) {
            if test {
                test_modules.push(module);
            }
        }
    }
    let mut uses = Vec::new();
    for source in sources {
        if source.module.is_empty()
            || source.named_as_tests
            || test_modules.iter().any(|t| source.module.starts_with(t))
        {
            continue;
        }
        for (line, to) in uses_in(&source.module, &source.text) {
            if to != source.module[0] {
                uses.push(Use {
                    file: source.file.clone(),
                    line,
                    from: source.module[0].clone(),
                    to,
                });
            }
        }
    }
    uses
}

/// The top-level modules the code of `text` (the file of `module`) names, with their lines;
/// not in `#[cfg(test)]` modules.
fn uses_in(module: &[String], text: &str) -> Vec<(usize, String)> {
    let code = strip(text);
    let bytes = code.as_bytes();
    let blocks = inline_modules(&code);
    let top: BTreeSet<&str> = modules().into_iter().collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let Some(word) = word_at(&code, at) else {
            at += 1;
            continue;
        };
        at += word.len();
        let after_path = code[..start].trim_end().ends_with("::");
        if after_path || !matches!(word, "crate" | "super") {
            continue;
        }
        // `crate::` reaches the root; `super::` climbs one module each.
        let mut ups = 0;
        let mut rest = start + word.len();
        let mut from_root = word == "crate";
        if word == "super" {
            ups = 1;
            while let Some(next) = path_step(&code, rest) {
                if word_at(&code, next) == Some("super") {
                    ups += 1;
                    rest = next + "super".len();
                } else {
                    break;
                }
            }
        }
        let Some(next) = path_step(&code, rest) else {
            continue;
        };
        let enclosing: Vec<&(Vec<String>, bool, usize, usize)> = blocks
            .iter()
            .filter(|(_, _, open, close)| *open < start && start < *close)
            .collect();
        if enclosing.iter().any(|(_, test, _, _)| *test) {
            continue;
        }
        let depth = module.len() + enclosing.len();
        if !from_root {
            from_root = ups == depth;
            if ups > depth {
                continue;
            }
        }
        if !from_root {
            continue;
        }
        let line = code[..start].matches('\n').count() + 1;
        for name in first_segments(&code, next) {
            if top.contains(name.as_str()) {
                found.push((line, name));
            }
        }
    }
    found
}

/// The identifier starting at `at`, if one starts there.
fn word_at(code: &str, at: usize) -> Option<&str> {
    let bytes = code.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if !is_word(*bytes.get(at)?) || (at > 0 && is_word(bytes[at - 1])) {
        return None;
    }
    let end = (at..bytes.len())
        .find(|&i| !is_word(bytes[i]))
        .unwrap_or(bytes.len());
    Some(&code[at..end])
}

/// Where the path goes on after `::` at `at` (spaces allowed), if it does.
fn path_step(code: &str, at: usize) -> Option<usize> {
    let rest = &code[at..];
    let trimmed = rest.trim_start();
    let after = trimmed.strip_prefix("::")?;
    let skipped = rest.len() - after.len();
    Some(at + skipped + (after.len() - after.trim_start().len()))
}

/// The first name of each path at `at`: `name` or each entry of `{a, b::c, self}`.
fn first_segments(code: &str, at: usize) -> Vec<String> {
    if let Some(word) = word_at(code, at) {
        return vec![word.to_string()];
    }
    if code.as_bytes().get(at) != Some(&b'{') {
        return Vec::new();
    }
    let mut depth = 0;
    let mut entries = vec![String::new()];
    for c in code[at..].chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                entries.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(entry) = entries.last_mut() {
            entry.push(c);
        }
    }
    entries
        .iter()
        .filter_map(|e| word_at(e.trim(), 0).map(String::from))
        .filter(|w| w != "self")
        .collect()
}

/// The modules declared in `code` (the file of `module`): each one's path, whether it is
/// `#[cfg(test)]`, and where its declaration is.
fn modules_declared(module: &[String], code: &str) -> Vec<(Vec<String>, bool, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = code[at..].find("mod") {
        let start = at + found;
        at = start + 3;
        if word_at(code, start) != Some("mod") {
            continue;
        }
        let rest = code[at..].trim_start();
        let Some(name) = word_at(rest, 0) else {
            continue;
        };
        let follows = rest[name.len()..].trim_start();
        if !(follows.starts_with(';') || follows.starts_with('{')) {
            continue;
        }
        // The attributes of the item: back to the end of the previous item.
        let item_start = code[..start].rfind([';', '{', '}']).map_or(0, |i| i + 1);
        let attributes: String = code[item_start..start]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut path = module.to_vec();
        path.push(name.to_string());
        out.push((path, attributes.contains("#[cfg(test)]"), start));
    }
    out
}

/// The inline modules (`mod name { ... }`) of `code`: path, `#[cfg(test)]`, and where their
/// braces open and close.
fn inline_modules(code: &str) -> Vec<(Vec<String>, bool, usize, usize)> {
    let mut out = Vec::new();
    for (path, test, start) in modules_declared(&[], code) {
        let Some(open) = code[start..].find(['{', ';']).map(|i| start + i) else {
            continue;
        };
        if code.as_bytes()[open] != b'{' {
            continue;
        }
        let mut depth = 0;
        let mut close = code.len();
        for (i, b) in code.bytes().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push((path, test, open, close));
    }
    out
}

/// `text` with its comments, string literals and character literals blanked out (newlines
/// kept, so positions and lines stay where they were).
fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to.min(bytes.len())] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let next = bytes.get(i + 1).copied();
        match bytes[i] {
            b'/' if next == Some(b'/') => {
                let end = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if next == Some(b'*') => {
                let (mut depth, mut j) = (0, i);
                while j < bytes.len() {
                    if text[j..].starts_with("/*") {
                        depth += 1;
                        j += 2;
                    } else if text[j..].starts_with("*/") {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' | b'b' if i == 0 || !is_word(bytes[i - 1]) => {
                // A raw string (r"", r#""#, br""), or an identifier starting with r or b.
                let mut j = i + 1;
                if bytes[i] == b'b' && bytes.get(j) == Some(&b'r') {
                    j += 1;
                }
                let hashes = bytes[j..].iter().take_while(|b| **b == b'#').count();
                let raw = bytes[i] == b'r' || j > i + 1;
                if raw && bytes.get(j + hashes) == Some(&b'"') {
                    let closing = format!("\"{}", "#".repeat(hashes));
                    let body = j + hashes + 1;
                    let end = text[body..]
                        .find(&closing)
                        .map_or(bytes.len(), |n| body + n + closing.len());
                    blank(&mut out, i, end);
                    i = end;
                } else {
                    i += 1;
                }
            }
            b'"' => {
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' {
                    j += if bytes[j] == b'\\' { 2 } else { 1 };
                }
                blank(&mut out, i, j + 1);
                i = j + 1;
            }
            b'\'' => {
                // A character literal ('a', '\n', '\u{e9}', 'é'), or a lifetime or label.
                let end = if next == Some(b'\\') {
                    text[i + 3..].find('\'').map(|n| i + 3 + n + 1)
                } else {
                    let c = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                    (bytes.get(i + 1 + c) == Some(&b'\'')).then_some(i + 2 + c)
                };
                match end {
                    Some(end) => {
                        blank(&mut out, i, end);
                        i = end;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("only whole literals and comments are blanked")
}

// ---- The reading itself ----

fn path(module: &str) -> Vec<String> {
    module.split("::").map(String::from).collect()
}

fn names(found: Vec<(usize, String)>) -> Vec<String> {
    found.into_iter().map(|(_, name)| name).collect()
}

#[test]
fn the_reading_finds_paths_and_groups() {
    let code = "use crate::model::Fingerprint;\n\
                use crate::{net::pki, wire::{self, msg}, store};\n\
                fn f() -> i64 { crate::clock::now_ms() }\n\
                pub(crate) fn g() {}\n\
                pub(in crate::server) fn h() {}\n";
    let found = uses_in(&path("server"), code);
    assert_eq!(
        found,
        [
            (1, "model".to_string()),
            (2, "net".into()),
            (2, "wire".into()),
            (2, "store".into()),
            (3, "clock".into()),
            (5, "server".into()),
        ]
    );
}

#[test]
fn the_reading_climbs_super_to_the_root_only() {
    let code = "use super::super::table;\nuse super::{net, model};\n";
    // From cli::task::render, two `super` reach cli: nothing outside it.
    assert!(uses_in(&path("cli::task::render"), code).is_empty());
    // From agent (src/agent/mod.rs), one `super` is the root.
    assert_eq!(names(uses_in(&path("agent"), code)), ["net", "model"]);
    // An inline module is one level more.
    let nested = "pub mod close { use super::super::net; }";
    assert_eq!(names(uses_in(&path("wire"), nested)), ["net"]);
    assert!(uses_in(&path("wire::frame"), nested).is_empty());
}

#[test]
fn the_reading_skips_comments_strings_and_test_modules() {
    let code = r###"
        // crate::server in a comment
        /* crate::server /* nested */ crate::server */
        /// [`crate::server::Node`]
        const A: &str = "crate::server";
        const B: &str = r#"crate::server "quoted""#;
        const C: &[u8] = br"crate::server";
        const D: char = '"';
        const E: char = 'é';
        fn f<'a>(x: &'a str) -> &'a str { x }
        #[cfg(test)]
        mod tests {
            use crate::server::Node;
            mod inner { use crate::cli::Cli; }
        }
        use crate::model::Event;
    "###;
    assert_eq!(names(uses_in(&path("sync"), code)), ["model"]);
    assert_eq!(strip("'\\''x"), "    x");
    let declared = modules_declared(&path("sync"), "#[cfg(test)]\nmod sim;\npub mod link;");
    assert_eq!(
        declared
            .into_iter()
            .map(|(p, test, _)| (p.join("::"), test))
            .collect::<Vec<_>>(),
        [
            ("sync::sim".to_string(), true),
            ("sync::link".into(), false)
        ]
    );
}

#[test]
fn the_reading_knows_each_file_s_module() {
    let parts = |file: &str| -> Vec<String> { file.split('/').map(String::from).collect() };
    assert_eq!(module_path(&parts("lib.rs")), Vec::<String>::new());
    assert_eq!(module_path(&parts("clock.rs")), ["clock"]);
    assert_eq!(module_path(&parts("model/mod.rs")), ["model"]);
    assert_eq!(
        module_path(&parts("cli/task/tests/render.rs")),
        ["cli", "task", "tests", "render"]
    );
    let all: BTreeMap<String, Source> =
        sources().into_iter().map(|s| (s.file.clone(), s)).collect();
    assert!(all["src/cli/task/tests/render.rs"].named_as_tests);
    assert!(all["src/model/scope/tests.rs"].named_as_tests);
    assert!(!all["src/model/scope.rs"].named_as_tests);
    assert_eq!(all["src/model/scope.rs"].module, ["model", "scope"]);
}
