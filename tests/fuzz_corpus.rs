//! The fuzz targets' corpus, replayed on the stable toolchain: every file of
//! `fuzz/corpus/TARGET/` goes through the check its `cargo fuzz` target runs
//! (`canopy::fuzzing::TARGETS`), so an input that once failed a check stays fixed.
//!
//! The seeds (`seed-*` files) are made by `canopy::fuzzing::seeds`; `make fuzz-seeds`
//! (`CANOPY_FUZZ_WRITE_SEEDS=1`) writes them again after a message or a config changes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use canopy::fuzzing::{self, Check, TARGETS, Verdict};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of a target's corpus, sorted.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    files.sort();
    files
}

/// Runs `check` on `bytes`; the panic's message if a property failed.
fn run(check: Check, bytes: &[u8]) -> Result<Verdict, String> {
    catch_unwind(AssertUnwindSafe(|| check(bytes))).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

#[test]
fn every_target_has_a_fuzz_target_and_a_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (target, _) in TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let source =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            source.contains(&format!("canopy::fuzzing::{target}(")),
            "{} does not call canopy::fuzzing::{target}",
            file.display()
        );
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "fuzz/Cargo.toml has no [[bin]] {target}"
        );
        assert!(!corpus(target).is_empty(), "no corpus for {target}");
    }
    let files = std::fs::read_dir(fuzz_dir().join("fuzz_targets")).unwrap();
    for file in files {
        let name = file.unwrap().file_name().into_string().unwrap();
        let target = name.trim_end_matches(".rs");
        assert!(
            TARGETS.iter().any(|(t, _)| *t == target),
            "fuzz/fuzz_targets/{name} is not in canopy::fuzzing::TARGETS"
        );
    }
}

#[test]
fn the_committed_corpus_passes_every_check() {
    let mut failed = Vec::new();
    let mut replayed = 0;
    for (target, check) in TARGETS {
        for file in corpus(target) {
            let bytes = std::fs::read(&file).unwrap();
            if let Err(message) = run(*check, &bytes) {
                failed.push(format!("{}: {message}", file.display()));
            }
            replayed += 1;
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {replayed} inputs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn each_seed_is_accepted_by_its_target_or_refused_if_bad() {
    let seeds = fuzzing::seeds();
    for (target, check) in TARGETS {
        let mine: Vec<_> = seeds.iter().filter(|s| s.target == *target).collect();
        assert!(mine.len() >= 2, "{target} has {} seeds", mine.len());
        for seed in mine {
            let expected = match seed.name.starts_with("bad-") {
                true => Verdict::Refused,
                false => Verdict::Accepted,
            };
            let verdict = run(*check, &seed.bytes)
                .unwrap_or_else(|e| panic!("{target} seed {}: {e}", seed.name));
            assert_eq!(verdict, expected, "{target} seed {}", seed.name);
        }
    }
    for seed in &seeds {
        assert!(
            TARGETS.iter().any(|(t, _)| *t == seed.target),
            "seed {} for no target {}",
            seed.name,
            seed.target
        );
    }
}

/// The committed `seed-*` files are the generated seeds; with `CANOPY_FUZZ_WRITE_SEEDS=1`
/// this writes them (and removes seed files no longer generated) instead.
#[test]
fn the_committed_seeds_are_the_generated_ones() {
    let write = std::env::var_os("CANOPY_FUZZ_WRITE_SEEDS").is_some_and(|v| v == "1");
    let seeds = fuzzing::seeds();
    let mut stale = Vec::new();
    for (target, _) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            for file in corpus(target) {
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("seed-") {
                    std::fs::remove_file(&file).unwrap();
                }
            }
        }
        for seed in seeds.iter().filter(|s| s.target == *target) {
            let file = dir.join(format!("seed-{}", seed.name));
            if write {
                std::fs::write(&file, &seed.bytes).unwrap();
            } else if std::fs::read(&file).ok().as_ref() != Some(&seed.bytes) {
                stale.push(file.display().to_string());
            }
        }
        if !write {
            for file in corpus(target) {
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let known = seeds
                    .iter()
                    .any(|s| s.target == *target && name == format!("seed-{}", s.name));
                if name.starts_with("seed-") && !known {
                    stale.push(format!("{} (no longer generated)", file.display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "seed files differ from the generated seeds; run `make fuzz-seeds`:\n{}",
        stale.join("\n")
    );
}
