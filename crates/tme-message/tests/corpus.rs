//! Every message of the shared corpus: `summarize` must not panic, every offset must lie
//! where RFC 3501 §6.4.5 sections need it (ranges in order and nested inside their parents),
//! and the summary must survive a serde_json round trip unchanged.

mod common;

use std::path::{Path, PathBuf};

use common::{check_round_trip, check_sections, check_summary, count_parts};
use tme_message::summarize;

const CORPUS_DIRECTORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus");

#[test]
fn corpus_messages_summarize_consistently() {
    let root = Path::new(CORPUS_DIRECTORY);
    if !root.is_dir() {
        println!("corpus not found at {CORPUS_DIRECTORY}; skipping");
        return;
    }
    let mut paths = Vec::new();
    collect_eml_files(root, &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "no .eml file under {CORPUS_DIRECTORY}");

    // Split the files over the cores: in a debug build the serde_json round trips
    // dominate, and each message is independent.
    let threads = std::thread::available_parallelism().map_or(1, |count| count.get());
    let chunk_length = paths.len().div_ceil(threads);
    let counts: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk_length)
            .map(|chunk| scope.spawn(move || check_files(chunk)))
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a corpus check failed"))
            .collect()
    });
    let parts_total: usize = counts.iter().map(|(parts, _)| parts).sum();
    let limited: usize = counts.iter().map(|(_, limited)| limited).sum();
    println!(
        "corpus: {} messages summarized, {parts_total} parts, {limited} hit a limit",
        paths.len()
    );
}

/// Checks each file; returns how many parts they had and how many hit a limit.
fn check_files(paths: &[PathBuf]) -> (usize, usize) {
    let mut parts_total = 0usize;
    let mut limited = 0usize;
    for path in paths {
        let raw = std::fs::read(path).expect("corpus file is readable");
        let summary = summarize(&raw);
        let context = path.display().to_string();
        check_summary(&summary, raw.len(), &context);
        parts_total += count_parts(&summary.body);
        limited += usize::from(summary.limits_reached);

        check_sections(&summary, &context);
        check_round_trip(&summary, &context);
    }
    (parts_total, limited)
}

fn collect_eml_files(directory: &Path, paths: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(directory).expect("corpus directory is readable");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_eml_files(&path, paths);
        } else if path.extension().is_some_and(|extension| extension == "eml") {
            paths.push(path);
        }
    }
}
