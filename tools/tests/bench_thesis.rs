//! `govfs bench thesis` end to end, at a small scale: it starts its own
//! local cluster (real node processes), runs all five experiments with real
//! and simulated IO, and writes the CSV files, the figures (PNG and SVG)
//! and the report; `--render-only` then makes the same report again from
//! the CSV files alone.

use std::path::Path;
use std::process::Command;

const GOVFS: &str = env!("CARGO_BIN_EXE_govfs");

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn bench(args: &[&str]) {
    let out = Command::new(GOVFS)
        .args(["bench", "thesis"])
        .args(args)
        .output()
        .expect("run govfs bench thesis");
    assert!(
        out.status.success(),
        "govfs bench thesis {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_five_experiments_make_csv_figures_and_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("evaluation");
    let report = dir.path().join("evaluation.md");
    let (out_s, report_s) = (out.to_string_lossy(), report.to_string_lossy());
    let scale = [
        "--ministries",
        "1,2",
        "--runs",
        "1",
        "--list-clients",
        "4",
        "--list-requests",
        "10",
        "--create-clients",
        "3",
        "--create-requests",
        "2",
        "--row-mb",
        "0.1",
        "--row-writers",
        "2",
        "--writers",
        "1,2",
        "--writers-row-mb",
        "0.1",
        "--io",
        "real,simulated",
    ];
    let mut args = vec!["--out", &out_s, "--report", &report_s];
    args.extend_from_slice(&scale);
    bench(&args);

    // One row per request: 2 ministry counts x 2 orders x 4 clients x 10.
    let list = lines(&out.join("list.csv"));
    assert_eq!(list.len(), 1 + 2 * 2 * 4 * 10, "list.csv");
    assert!(list[1..].iter().any(|l| l.starts_with("2,stride,")));
    // 2 ministry counts x 3 clients x 2 creates.
    assert_eq!(lines(&out.join("create.csv")).len(), 1 + 2 * 3 * 2);
    // Per IO: the row-size point (2 writers) and the writer points (1 and
    // 2), for 2 experiments and 2 kinds of lock: (2 + 1 + 2) x 4 rows.
    let locks = lines(&out.join("locks.csv"));
    assert_eq!(locks.len(), 1 + 2 * 5 * 4, "locks.csv");
    for io in ["real", "simulated"] {
        assert_eq!(
            locks
                .iter()
                .filter(|l| l.starts_with(&format!("{io},")))
                .count(),
            20
        );
    }

    let mut figures = vec![
        "fig13_list_cdf",
        "fig14_list_violin",
        "fig15_create_cdf",
        "fig16_create_scatter",
    ];
    let locking = [
        "fig17_one_row_size",
        "fig18_one_row_writers",
        "fig19_all_rows_size",
        "fig20_all_rows_writers",
    ];
    let simulated: Vec<String> = locking.iter().map(|f| format!("{f}_simulated")).collect();
    figures.extend(locking);
    figures.extend(simulated.iter().map(String::as_str));
    let text = std::fs::read_to_string(&report).expect("the report");
    for f in &figures {
        let png = std::fs::read(out.join(format!("{f}.png"))).expect("png");
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
            "{f}.png"
        );
        let svg = std::fs::read_to_string(out.join(format!("{f}.svg"))).expect("svg");
        assert!(svg.contains("<svg") && svg.contains("<text"), "{f}.svg");
        assert!(
            text.contains(&format!("](evaluation/{f}.png)")),
            "the report shows {f}"
        );
    }
    for section in [
        "## 1 and 2. List directory",
        "## 3. Create file",
        "## 4 and 5. Ranged locking",
        "## What differs from the thesis, and why",
        "| 1 | batch | 40 |",
        "| 2 | stride | 40 |",
        "| thesis: one row, by row (ms) | 411 |",
    ] {
        assert!(text.contains(section), "the report lacks {section:?}");
    }
    assert!(
        text.contains("bench thesis --out"),
        "the report names its command"
    );

    // The report is a function of the CSV files: made again from them
    // alone, it is the same.
    bench(&["--out", &out_s, "--report", &report_s, "--render-only"]);
    assert_eq!(std::fs::read_to_string(&report).expect("report"), text);
}

#[test]
fn bad_arguments_are_refused_before_a_cluster_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(GOVFS)
        .args(["bench", "thesis", "--ministries", "0", "--out"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ministries"));
    // Nothing to render from.
    let out = Command::new(GOVFS)
        .args(["bench", "thesis", "--render-only", "--out"])
        .arg(dir.path().join("empty"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no results"));
}
