//! Sorting more records than memory should hold: records gather in a
//! buffer of bounded size, each full buffer is sorted and spilled to a
//! temporary file as a run, and the runs are merged when read back. Memory
//! stays flat however many records there are; only the temporary files grow.
//! Input that arrives (nearly) in order, as files sorted by their key often
//! do, extends one run instead of starting new ones, so its merge is a plain
//! read.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};

/// Buffer size of each run while merging: many runs, each read in order.
const RUN_READ_BUFFER: usize = 32 * 1024;
/// Runs merged at once. Whenever this many runs of one generation gather
/// (a huge file far from sorted), they are merged into one longer run, so
/// that open files (1024 in Lambda) and read buffers stay bounded.
const MAX_FAN_IN: usize = 64;

/// A record that can be spilled to a run file and read back.
pub(super) trait Record: Ord + Clone + Sized {
    /// About the bytes the record holds in memory, itself and its heap.
    fn memory(&self) -> usize;

    fn write_to(&self, out: &mut impl Write) -> io::Result<()>;

    /// The next record, or None at the clean end of the run.
    fn read_from(input: &mut impl Read) -> io::Result<Option<Self>>;
}

/// Collects records in any order and gives them back sorted.
pub(super) struct ExternalSorter<T> {
    buffer: Vec<T>,
    memory: usize,
    budget: usize,
    /// Runs written and closed, each with its generation: 0 for a spilled
    /// buffer, n + 1 for a merge of runs of generation n.
    runs: Vec<(u32, File)>,
    /// The run being written, and the last record in it.
    open_run: Option<(BufWriter<File>, T)>,
}

impl<T: Record> ExternalSorter<T> {
    /// A sorter that spills a run whenever its buffer holds `budget` bytes.
    pub(super) fn new(budget: usize) -> Self {
        Self {
            buffer: Vec::new(),
            memory: 0,
            budget,
            runs: Vec::new(),
            open_run: None,
        }
    }

    pub(super) fn push(&mut self, record: T) -> io::Result<()> {
        self.memory += record.memory();
        self.buffer.push(record);
        if self.memory >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buffer.sort_unstable();
        let (Some(first), Some(last)) = (self.buffer.first(), self.buffer.last()) else {
            return Ok(());
        };
        let last = last.clone();
        // Records that all come after the open run's continue it.
        let continues = matches!(&self.open_run, Some((_, tail)) if tail <= first);
        if !continues {
            self.close_run()?;
            let out = BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?);
            self.open_run = Some((out, last.clone()));
        }
        let (out, tail) = self.open_run.as_mut().expect("a run is open");
        for record in self.buffer.drain(..) {
            record.write_to(out)?;
        }
        *tail = last;
        self.memory = 0;
        Ok(())
    }

    fn close_run(&mut self) -> io::Result<()> {
        let Some((out, _)) = self.open_run.take() else {
            return Ok(());
        };
        self.runs
            .push((0, out.into_inner().map_err(|e| e.into_error())?));
        // Runs are added newest last and generations only grow by merging
        // the newest: the last MAX_FAN_IN runs of one generation become one.
        while self.runs.len() >= MAX_FAN_IN {
            let oldest = self.runs.len() - MAX_FAN_IN;
            let generation = self.runs[oldest].0;
            if self.runs[oldest..].iter().any(|(g, _)| *g != generation) {
                break;
            }
            let group = self.runs.drain(oldest..).map(|(_, run)| run).collect();
            let merged = merge_into_run::<T>(group)?;
            self.runs.push((generation + 1, merged));
        }
        Ok(())
    }

    /// Every record pushed, in order.
    pub(super) fn finish(mut self) -> io::Result<Sorted<T>> {
        if self.open_run.is_none() {
            self.buffer.sort_unstable();
            return Ok(Sorted::InMemory(self.buffer.into_iter()));
        }
        self.spill()?;
        self.close_run()?;
        // Fewer than MAX_FAN_IN runs per generation are left.
        let mut runs: Vec<File> = self.runs.into_iter().map(|(_, run)| run).collect();
        while runs.len() > MAX_FAN_IN {
            let mut rest = runs.into_iter();
            let mut longer = Vec::new();
            loop {
                let group: Vec<File> = rest.by_ref().take(MAX_FAN_IN).collect();
                if group.is_empty() {
                    break;
                }
                longer.push(merge_into_run::<T>(group)?);
            }
            runs = longer;
        }
        merge(runs)
    }
}

/// Merges `runs` into one new run.
fn merge_into_run<T: Record>(runs: Vec<File>) -> io::Result<File> {
    let mut out = BufWriter::with_capacity(256 * 1024, tempfile::tempfile()?);
    for record in merge::<T>(runs)? {
        record?.write_to(&mut out)?;
    }
    out.into_inner().map_err(|e| e.into_error())
}

/// Reads `runs` (each sorted) back as one sorted sequence.
fn merge<T: Record>(runs: Vec<File>) -> io::Result<Sorted<T>> {
    let mut inputs = Vec::with_capacity(runs.len());
    for mut file in runs {
        file.rewind()?;
        inputs.push(BufReader::with_capacity(RUN_READ_BUFFER, file));
    }
    if inputs.len() == 1 {
        return Ok(Sorted::OneRun(inputs.pop().expect("one run")));
    }
    let mut heads = BinaryHeap::with_capacity(inputs.len());
    for (run, input) in inputs.iter_mut().enumerate() {
        if let Some(record) = T::read_from(input)? {
            heads.push(Reverse((record, run)));
        }
    }
    Ok(Sorted::Merged {
        runs: inputs,
        heads,
    })
}

/// The records of an [`ExternalSorter`], in order.
pub(super) enum Sorted<T> {
    /// Everything fitted the buffer: nothing was spilled.
    InMemory(std::vec::IntoIter<T>),
    /// Everything came in order: one run, read as it is.
    OneRun(BufReader<File>),
    /// The runs, merged: the smallest head of all runs comes next.
    Merged {
        runs: Vec<BufReader<File>>,
        heads: BinaryHeap<Reverse<(T, usize)>>,
    },
}

impl<T: Record> Iterator for Sorted<T> {
    type Item = io::Result<T>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Sorted::InMemory(records) => records.next().map(Ok),
            Sorted::OneRun(input) => T::read_from(input).transpose(),
            Sorted::Merged { runs, heads } => {
                let Reverse((record, run)) = heads.pop()?;
                match T::read_from(&mut runs[run]) {
                    Ok(Some(next)) => heads.push(Reverse((next, run))),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                Some(Ok(record))
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes; false when the input ended before the
/// first of them (a clean end between records).
pub(super) fn read_record_start(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a sort run ended inside a record",
                ))
            }
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A pair of integers, such as (customer_id, tickets).
impl Record for (i64, i64) {
    fn memory(&self) -> usize {
        std::mem::size_of::<Self>()
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&self.0.to_le_bytes())?;
        out.write_all(&self.1.to_le_bytes())
    }

    fn read_from(input: &mut impl Read) -> io::Result<Option<Self>> {
        let mut pair = [0u8; 16];
        if !read_record_start(input, &mut pair)? {
            return Ok(None);
        }
        let (first, second) = pair.split_at(8);
        Ok(Some((
            i64::from_le_bytes(first.try_into().expect("8 bytes")),
            i64::from_le_bytes(second.try_into().expect("8 bytes")),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorter(records: &[(i64, i64)], budget: usize) -> ExternalSorter<(i64, i64)> {
        let mut sorter = ExternalSorter::new(budget);
        for &record in records {
            sorter.push(record).unwrap();
        }
        sorter
    }

    fn sorted(records: &[(i64, i64)], budget: usize) -> Vec<(i64, i64)> {
        sorter(records, budget)
            .finish()
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn records_come_back_sorted_whether_spilled_or_not() {
        // A scrambled sequence with repeats.
        let records: Vec<(i64, i64)> = (0..10_000i64).map(|i| ((i * 7919) % 1013, i % 3)).collect();
        let mut expected = records.clone();
        expected.sort();
        assert_eq!(sorted(&records, usize::MAX), expected, "in memory");
        // 16 bytes per record: a run of 100 records, a hundred runs, the
        // first MAX_FAN_IN of them merged while spilling.
        let many = sorter(&records, 1600);
        assert!(many.runs.iter().any(|(generation, _)| *generation > 0));
        assert!(many.runs.len() < MAX_FAN_IN, "open runs stay bounded");
        assert_eq!(sorted(&records, 1600), expected, "many runs");
        // Thousands of runs: three generations.
        let thousands = sorter(&records, 16);
        assert!(thousands.runs.iter().any(|(generation, _)| *generation > 1));
        assert!(
            thousands.runs.len() < 3 * MAX_FAN_IN,
            "open runs stay bounded"
        );
        assert_eq!(sorted(&records, 16), expected, "a run per record");
    }

    #[test]
    fn input_in_order_extends_one_run() {
        let records: Vec<(i64, i64)> = (0..1000).map(|i| (i / 3, i % 3)).collect();
        let in_order = sorter(&records, 160);
        assert!(in_order.open_run.is_some(), "spilled");
        assert!(in_order.runs.is_empty(), "one run, still open");
        assert_eq!(sorted(&records, 160), records);
        // Records out of order start new runs; the order holds.
        let mut shuffled = records.clone();
        shuffled.swap(500, 20);
        let out_of_order = sorter(&shuffled, 160);
        assert_eq!(
            out_of_order.runs.len(),
            2,
            "two closed runs and an open one"
        );
        assert_eq!(sorted(&shuffled, 160), records);
    }

    #[test]
    fn nothing_pushed_gives_nothing() {
        assert!(sorted(&[], 16).is_empty());
    }

    #[test]
    fn a_run_cut_short_is_an_error_not_an_end() {
        let mut input: &[u8] = &[1, 2, 3];
        assert!(<(i64, i64)>::read_from(&mut input).is_err());
        let mut empty: &[u8] = &[];
        assert!(<(i64, i64)>::read_from(&mut empty).unwrap().is_none());
    }
}
