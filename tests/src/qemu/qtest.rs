//! The qtest line protocol: one command per line, answered `OK [value]` or `FAIL ...`; `IRQ raise
//! N` / `IRQ lower N` lines may arrive in between and are recorded.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A qtest connection.
#[derive(Debug)]
pub struct Qtest {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
    /// IRQ lines seen, in order.
    pub irqs: Vec<String>,
    /// Commands sent.
    pub commands: u64,
}

/// A qtest failure: the socket failed, QEMU answered FAIL, or the answer did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QtestError(pub String);

impl std::fmt::Display for QtestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "qtest: {}", self.0)
    }
}

impl std::error::Error for QtestError {}

impl Qtest {
    /// Wraps an accepted connection; every answer must come within `timeout`.
    pub fn new(stream: UnixStream, timeout: Duration) -> Result<Self, QtestError> {
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| QtestError(e.to_string()))?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| QtestError(e.to_string()))?);
        Ok(Self {
            writer: stream,
            reader,
            irqs: Vec::new(),
            commands: 0,
        })
    }

    /// Sends one command and returns the text after `OK`.
    pub fn cmd(&mut self, line: &str) -> Result<String, QtestError> {
        self.commands += 1;
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| QtestError(format!("{line}: {e}")))?;
        loop {
            let mut answer = String::new();
            let n = self
                .reader
                .read_line(&mut answer)
                .map_err(|e| QtestError(format!("{line}: {e}")))?;
            if n == 0 {
                return Err(QtestError(format!("{line}: QEMU closed the connection")));
            }
            let a = answer.trim_end();
            if a.starts_with("IRQ") {
                self.irqs.push(a.to_string());
                continue;
            }
            if let Some(rest) = a.strip_prefix("OK") {
                return Ok(rest.trim().to_string());
            }
            return Err(QtestError(format!("{line}: {a}")));
        }
    }

    fn value(&mut self, line: &str) -> Result<u64, QtestError> {
        let v = self.cmd(line)?;
        u64::from_str_radix(v.trim_start_matches("0x"), 16)
            .map_err(|_| QtestError(format!("{line}: bad value {v}")))
    }

    /// Reads `width` bytes (1, 2, 4, 8) at a physical address.
    pub fn read(&mut self, width: u8, addr: u64) -> Result<u64, QtestError> {
        let op = match width {
            1 => "readb",
            2 => "readw",
            4 => "readl",
            _ => "readq",
        };
        self.value(&format!("{op} {addr:#x}"))
    }

    /// Writes `width` bytes at a physical address.
    pub fn write(&mut self, width: u8, addr: u64, v: u64) -> Result<(), QtestError> {
        let op = match width {
            1 => "writeb",
            2 => "writew",
            4 => "writel",
            _ => "writeq",
        };
        self.cmd(&format!("{op} {addr:#x} {v:#x}")).map(|_| ())
    }

    /// Port output.
    pub fn out(&mut self, width: u8, port: u16, v: u32) -> Result<(), QtestError> {
        let op = match width {
            1 => "outb",
            2 => "outw",
            _ => "outl",
        };
        self.cmd(&format!("{op} {port:#x} {v:#x}")).map(|_| ())
    }

    /// Port input.
    pub fn inp(&mut self, width: u8, port: u16) -> Result<u32, QtestError> {
        let op = match width {
            1 => "inb",
            2 => "inw",
            _ => "inl",
        };
        self.value(&format!("{op} {port:#x}")).map(|v| v as u32)
    }
}
