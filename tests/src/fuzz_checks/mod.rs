//! The invariants every decoder of untrusted bytes keeps, as functions of
//! the untrusted bytes. Each panics when an invariant breaks.
//!
//! One body, two callers: the fuzz targets in `fuzz/` (nightly,
//! libFuzzer) call them on generated inputs, and the replay test
//! (`tests/tests/supervisor/fuzz_corpus.rs`, stable) runs every file of
//! the committed corpus `fuzz/corpus/TARGET/` through them, so a crash once
//! fixed stays fixed. The fuzz crate compiles this same file by path.
//!
//! Allocation bounds are checked when the binary's global allocator is
//! [`alloc::Counting`] (the fuzz targets and the replay test install it).

pub mod alloc;
pub mod config;
pub mod egress;
pub mod frame;
pub mod jsonrpc;
pub mod launch;
pub mod lines;
pub mod model;
pub mod sse;
pub mod store;
pub mod utf8;

/// A check: panics if the bytes break one of the decoder's invariants.
pub type Check = fn(&[u8]);

/// Every target: its name (the fuzz binary and the corpus folder) and its
/// check.
pub const TARGETS: &[(&str, Check)] = &[
    ("frame", frame::frame),
    ("message", frame::message),
    ("lines", lines::lines),
    ("jsonrpc_cut", jsonrpc::cut),
    ("sse", sse::sse),
    ("utf8", utf8::utf8),
    ("openai_stream", model::openai),
    ("anthropic_stream", model::anthropic),
    ("servers_json", config::servers_json),
    ("config_toml", config::config_toml),
    ("store_file", store::store_file),
    ("egress_head", egress::head),
    ("egress_socks", egress::socks),
    ("launch_registry", launch::registry),
];

/// The check of the target named `name`.
pub fn check(name: &str) -> Option<Check> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Takes parameters off the front of a fuzz input; past its end every
/// read is zero, so any input is a valid one.
pub struct Params<'a> {
    data: &'a [u8],
}

impl<'a> Params<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn u8(&mut self) -> u8 {
        let (b, rest) = self
            .data
            .split_first()
            .map_or((0, &[][..]), |(b, r)| (*b, r));
        self.data = rest;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, i| acc | (u64::from(self.u8()) << (8 * i)))
    }

    /// What is left: the bytes the decoder gets.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// SplitMix64: deterministic split points from a seed in the input, so a
/// corpus file replays the same way everywhere.
pub struct Splits(u64);

impl Splits {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d4_049b_b133_111e);
        z ^ (z >> 31)
    }

    /// `bytes` cut into pieces of 0 to `max_piece` bytes (empty pieces
    /// included: a read may return nothing new).
    pub fn split<'b>(&mut self, mut bytes: &'b [u8], max_piece: usize) -> Vec<&'b [u8]> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let n = (self.next() % (max_piece as u64 + 1)) as usize;
            let (piece, rest) = bytes.split_at(n.min(bytes.len()));
            out.push(piece);
            bytes = rest;
        }
        out
    }
}

/// An `AsyncRead` (and `AsyncWrite`, collecting what is written) that
/// returns the given pieces one read at a time, as a socket may.
pub struct Pieces<'a> {
    pieces: std::collections::VecDeque<&'a [u8]>,
    pub written: Vec<u8>,
}

impl<'a> Pieces<'a> {
    pub fn new(pieces: Vec<&'a [u8]>) -> Self {
        Self {
            pieces: pieces.into(),
            written: Vec::new(),
        }
    }
}

impl tokio::io::AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // An empty piece is skipped: a read returning nothing is EOF.
        while let Some(piece) = self.pieces.pop_front() {
            if piece.is_empty() {
                continue;
            }
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                self.pieces.push_front(&piece[n..]);
            }
            break;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Pieces<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.written.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Runs a future to completion on a current-thread runtime built once per
/// thread (building one per input would dominate the fuzzer's time).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime");
    }
    RT.with(|rt| rt.block_on(f))
}
