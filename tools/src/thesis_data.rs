//! The raw results of `govfs bench thesis`: one CSV file per kind of
//! experiment, one row per request (list, create) or per writer (locks).
//! The report and the plots are made from these files alone, so that
//! every number in them can be traced to a row.

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

/// `name()` and `FromStr` for an enum whose variants have fixed names in
/// the CSV files.
macro_rules! named {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(format!(concat!("unknown ", stringify!($ty), " {:?}"), s)),
                }
            }
        }
    };
}

pub const LIST_CSV: &str = "list.csv";
pub const CREATE_CSV: &str = "create.csv";
pub const LOCKS_CSV: &str = "locks.csv";

/// How a list client orders its requests over the directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Order {
    /// All requests for one directory, then the next.
    Batch,
    /// One request per directory in turn.
    Stride,
}

named!(Order { Batch => "batch", Stride => "stride" });

/// One list directory request.
#[derive(Clone, Debug, PartialEq)]
pub struct ListRow {
    pub ministries: usize,
    pub order: Order,
    pub run: usize,
    pub client: usize,
    pub request: usize,
    /// The directory listed, 1-based (`/dN`).
    pub dir: usize,
    /// When it was sent, from the run's common start, µs.
    pub start_us: u64,
    /// How long it took, µs.
    pub us: u64,
}

/// One file create.
#[derive(Clone, Debug, PartialEq)]
pub struct CreateRow {
    pub ministries: usize,
    pub run: usize,
    pub client: usize,
    pub request: usize,
    pub dir: usize,
    pub start_us: u64,
    pub us: u64,
}

/// The thesis's two locking experiments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockExperiment {
    /// Each writer writes one row.
    OneRow,
    /// Each writer writes all ten rows.
    AllRows,
}

named!(LockExperiment { OneRow => "one-row", AllRows => "all-rows" });

impl LockExperiment {
    pub fn label(self) -> &'static str {
        match self {
            LockExperiment::OneRow => "one row",
            LockExperiment::AllRows => "all rows",
        }
    }
}

/// Which parameter a locking measurement varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sweep {
    /// Row size, at a fixed writer count (the thesis: 6).
    RowSize,
    /// Writer count, at a fixed row size (the thesis: 10 MB).
    Writers,
}

named!(Sweep { RowSize => "row-size", Writers => "writers" });

/// What a writer locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockKind {
    /// A write lease on the row it writes.
    ByRow,
    /// A write lease on the whole file.
    WholeFile,
}

named!(LockKind { ByRow => "by-row", WholeFile => "whole-file" });

impl LockKind {
    pub fn label(self) -> &'static str {
        match self {
            LockKind::ByRow => "by row",
            LockKind::WholeFile => "whole file",
        }
    }
}

/// How the locking writers do their IO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Io {
    /// Real data through the data plane, under the writer's lease.
    Real,
    /// Sleep while holding the lease, at a fixed speed (as the thesis did).
    Simulated,
    /// No IO: the leases alone.
    None,
}

named!(Io { Real => "real", Simulated => "simulated", None => "none" });

impl Io {
    /// Figures of real IO carry the thesis's names; the others a suffix.
    pub fn figure_suffix(self) -> &'static str {
        match self {
            Io::Real => "",
            Io::Simulated => "_simulated",
            Io::None => "_no_io",
        }
    }
}

/// One writer of one locking run.
#[derive(Clone, Debug, PartialEq)]
pub struct LockRow {
    pub io: Io,
    pub experiment: LockExperiment,
    pub sweep: Sweep,
    pub lock: LockKind,
    pub row_mb: f64,
    pub writers: usize,
    pub run: usize,
    pub writer: usize,
    /// From the common start to the writer's last release, ms.
    pub ms: f64,
    /// Leases this writer lost (revoked for a waiting writer) and took again.
    pub lost: u64,
}

pub const LIST_HEADER: &str = "ministries,order,run,client,request,dir,start_us,us";
pub const CREATE_HEADER: &str = "ministries,run,client,request,dir,start_us,us";
pub const LOCKS_HEADER: &str = "io,experiment,sweep,lock,row_mb,writers,run,writer,ms,lost";

pub fn list_line(out: &mut String, r: &ListRow) {
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{}",
        r.ministries,
        r.order.name(),
        r.run,
        r.client,
        r.request,
        r.dir,
        r.start_us,
        r.us
    );
}

pub fn create_line(out: &mut String, r: &CreateRow) {
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{}",
        r.ministries, r.run, r.client, r.request, r.dir, r.start_us, r.us
    );
}

pub fn lock_line(out: &mut String, r: &LockRow) {
    let _ = writeln!(
        out,
        "{},{},{},{},{},{},{},{},{:.3},{}",
        r.io.name(),
        r.experiment.name(),
        r.sweep.name(),
        r.lock.name(),
        r.row_mb,
        r.writers,
        r.run,
        r.writer,
        r.ms,
        r.lost
    );
}

/// The rows of one CSV file, each parsed by `row` from its fields.
fn parse<T>(
    path: &Path,
    header: &str,
    row: impl Fn(&[&str]) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(format!(
            "{}: the first line is not the header {header:?}",
            path.display()
        ));
    }
    let columns = header.split(',').count();
    lines
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            let fields: Vec<&str> = l.split(',').collect();
            if fields.len() != columns {
                return Err(format!(
                    "{} line {}: {} fields, expected {columns}",
                    path.display(),
                    i + 2,
                    fields.len()
                ));
            }
            row(&fields).map_err(|e| format!("{} line {}: {e}", path.display(), i + 2))
        })
        .collect()
}

fn field<T: FromStr>(fields: &[&str], i: usize, name: &str) -> Result<T, String> {
    fields[i]
        .parse()
        .map_err(|_| format!("bad {name} {:?}", fields[i]))
}

pub fn read_list(path: &Path) -> Result<Vec<ListRow>, String> {
    parse(path, LIST_HEADER, |f| {
        Ok(ListRow {
            ministries: field(f, 0, "ministries")?,
            order: f[1].parse()?,
            run: field(f, 2, "run")?,
            client: field(f, 3, "client")?,
            request: field(f, 4, "request")?,
            dir: field(f, 5, "dir")?,
            start_us: field(f, 6, "start_us")?,
            us: field(f, 7, "us")?,
        })
    })
}

pub fn read_create(path: &Path) -> Result<Vec<CreateRow>, String> {
    parse(path, CREATE_HEADER, |f| {
        Ok(CreateRow {
            ministries: field(f, 0, "ministries")?,
            run: field(f, 1, "run")?,
            client: field(f, 2, "client")?,
            request: field(f, 3, "request")?,
            dir: field(f, 4, "dir")?,
            start_us: field(f, 5, "start_us")?,
            us: field(f, 6, "us")?,
        })
    })
}

pub fn read_locks(path: &Path) -> Result<Vec<LockRow>, String> {
    parse(path, LOCKS_HEADER, |f| {
        Ok(LockRow {
            io: f[0].parse()?,
            experiment: f[1].parse()?,
            sweep: f[2].parse()?,
            lock: f[3].parse()?,
            row_mb: field(f, 4, "row_mb")?,
            writers: field(f, 5, "writers")?,
            run: field(f, 6, "run")?,
            writer: field(f, 7, "writer")?,
            ms: field(f, 8, "ms")?,
            lost: field(f, 9, "lost")?,
        })
    })
}

pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.iter().sum::<f64>() / values.len() as f64
}

pub fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_a_write_and_a_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list = ListRow {
            ministries: 3,
            order: Order::Stride,
            run: 1,
            client: 29,
            request: 1999,
            dir: 3,
            start_us: 123_456,
            us: 87,
        };
        let create = CreateRow {
            ministries: 5,
            run: 4,
            client: 8,
            request: 9,
            dir: 2,
            start_us: 5,
            us: 1234,
        };
        let lock = LockRow {
            io: Io::Simulated,
            experiment: LockExperiment::AllRows,
            sweep: Sweep::Writers,
            lock: LockKind::WholeFile,
            row_mb: 0.1,
            writers: 32,
            run: 2,
            writer: 31,
            ms: 12.5,
            lost: 3,
        };
        let (mut a, mut b, mut c) = (
            format!("{LIST_HEADER}\n"),
            format!("{CREATE_HEADER}\n"),
            format!("{LOCKS_HEADER}\n"),
        );
        list_line(&mut a, &list);
        create_line(&mut b, &create);
        lock_line(&mut c, &lock);
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p(LIST_CSV), a).expect("write");
        std::fs::write(p(CREATE_CSV), b).expect("write");
        std::fs::write(p(LOCKS_CSV), c).expect("write");
        assert_eq!(read_list(&p(LIST_CSV)).expect("list"), vec![list]);
        assert_eq!(read_create(&p(CREATE_CSV)).expect("create"), vec![create]);
        assert_eq!(read_locks(&p(LOCKS_CSV)).expect("locks"), vec![lock]);
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LIST_CSV);
        std::fs::write(&path, "wrong,header\n").expect("write");
        assert!(read_list(&path).unwrap_err().contains("header"));
        std::fs::write(&path, format!("{LIST_HEADER}\n1,batch,0,0,0,1,5\n")).expect("write");
        assert!(read_list(&path).unwrap_err().contains("line 2: 7 fields"));
        std::fs::write(&path, format!("{LIST_HEADER}\n1,sideways,0,0,0,1,5,6\n")).expect("write");
        assert!(read_list(&path).unwrap_err().contains("sideways"));
    }
}
