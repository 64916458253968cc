//! Byte streams between async code and the blocking parsers of [`crate::imaging`], which read
//! a `std::io::Read` and write a `std::io::Write` on a blocking thread while the bytes stream
//! (uploads being checked, copies being de-identified). Bounded channels carry the chunks, so
//! memory stays at a few chunks whatever the file size.

use std::io::{self, Read, Write};

use actix_web::web::Bytes;
use tokio::sync::mpsc;

/// A blocking reader of the chunks sent on a channel; the end of the stream is the sender
/// being dropped.
pub struct ChannelReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(chunks: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// A blocking writer that sends what it is given on a channel, in chunks of `chunk_bytes`.
/// Writing fails once the receiving side is gone.
pub struct ChannelWriter {
    chunks: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
    chunk_bytes: usize,
}

impl ChannelWriter {
    pub fn new(chunks: mpsc::Sender<Bytes>, chunk_bytes: usize) -> Self {
        ChannelWriter {
            chunks,
            buffer: Vec::with_capacity(chunk_bytes),
            chunk_bytes,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(self.chunk_bytes));
        self.chunks
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the receiver is gone"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk_bytes - self.buffer.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == self.chunk_bytes {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
