//! A log of events shared by the processes of a multi-process test: each appends whole lines to one file; the test
//! reads them back in the order they were written.

use std::io::Write;
use std::path::Path;

/// Appends `line` (and a newline) to the log at `path`, creating it if needed.
pub fn append(path: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the event log");
    file.write_all(format!("{line}\n").as_bytes())
        .expect("write the event log");
}

/// The lines of the log at `path` (none if it does not exist yet), each split into its space-separated words.
pub fn read(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| line.split(' ').map(str::to_owned).collect())
        .collect()
}
