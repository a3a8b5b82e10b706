//! What the fuzz targets share: an allocator that measures the memory a
//! call holds at its peak (so a target can assert a bound, not merely
//! survive libFuzzer's RSS limit), and a reader that hands its input over
//! in short, interrupted reads (so every buffer boundary is crossed).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes live and their peak. A target
/// that asserts memory bounds installs it with `#[global_allocator]`.
pub struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters move.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        moved
    }
}

/// Runs `f` and returns what it returned with the most bytes it held at
/// once (allocated during the call and live at the same time), as counted
/// by [`CountingAllocator`] (0 when it is not the global allocator).
pub fn peak_bytes_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    (out, peak)
}

/// Hands `input` over at most `chunk` bytes per read, every third read
/// failing with `Interrupted` first (which readers must retry).
pub struct ShortReads<'a> {
    input: &'a [u8],
    chunk: usize,
    reads: usize,
}

impl<'a> ShortReads<'a> {
    pub fn new(input: &'a [u8], chunk: usize) -> Self {
        Self {
            input,
            chunk: chunk.max(1),
            reads: 0,
        }
    }
}

impl Read for ShortReads<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.reads += 1;
        if self.reads % 3 == 0 {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = self.chunk.min(out.len()).min(self.input.len());
        out[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

/// The longest text a value carried out of the input may have (see
/// `order_pipeline::carried_text`): the bound plus its truncation marker.
pub const MAX_CARRIED_TEXT: usize = order_pipeline::carried_text::MAX_CARRIED_BYTES
    + "…(truncated, 18446744073709551615 bytes)".len();
