//! The IO of operators on this machine: files and sockets for sources, standard output for
//! print sinks, and a directory of part files for the exactly-once file sink.
//!
//! Part files follow the two-phase protocol the sink drives: a part is written under a hidden
//! pending name (`.pending-<part>`), fsynced, and made visible by an atomic rename on commit;
//! a discarded part is deleted. A reader of the directory therefore sees committed parts only.
//!
//! Rust operators (`custom` in the job graph) come from the program's registry
//! ([`Operators`]); a name it lacks is `None`, and core fails the task naming the operator.

use super::operators::Operators;
use super::rocks_state::{RocksState, SharedDirs};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use weir_core::dataflow::operators::{
    Connectors, LineWriter, PartStore, ReadOutcome, ReaderError, ReaderRequest, SinkIoError, SourceReader,
};
use weir_core::dataflow::operators::{Operator, OperatorContext};
use weir_core::dataflow::state::StateStore;
use weir_core::ids::AllocationId;

use weir_core::dataflow::operators::PENDING_PART_PREFIX as PENDING_PREFIX;

/// Connectors backed by the local file system, sockets and standard output, and the Rust
/// operators the program registered.
pub struct LocalConnectors {
    operators: Operators,
    /// Where keyed operators of the `rocksdb` backend open their databases.
    rocks: RocksState,
    /// The slot (allocation) the task runs in: its RocksDB instances share that slot's memory.
    allocation: AllocationId,
    /// Where RocksDB instances put and find incremental checkpoint files.
    shared: SharedDirs,
}

impl LocalConnectors {
    /// Connectors whose Rust operators come from `operators`, for a task in `allocation` whose
    /// RocksDB instances use `shared` for incremental checkpoints.
    pub fn new(
        operators: Operators,
        rocks: RocksState,
        allocation: AllocationId,
        shared: SharedDirs,
    ) -> LocalConnectors {
        LocalConnectors { operators, rocks, allocation, shared }
    }
}

impl Connectors for LocalConnectors {
    fn source_reader(
        &mut self,
        _: &OperatorContext,
        request: ReaderRequest<'_>,
    ) -> Result<Box<dyn SourceReader>, String> {
        match request {
            ReaderRequest::File { path } => Ok(Box::new(FileReader { path: PathBuf::from(path), file: None })),
            ReaderRequest::Socket { host, port } => {
                let stream = TcpStream::connect((host, port)).map_err(|error| format!("{host}:{port}: {error}"))?;
                stream.set_read_timeout(Some(Duration::from_millis(10))).map_err(|error| error.to_string())?;
                Ok(Box::new(SocketReader { stream, ended: false }))
            }
        }
    }

    fn keyed_state_store(&mut self, operator: &OperatorContext) -> Result<Box<dyn StateStore>, String> {
        self.rocks.open(self.allocation, operator, &self.shared)
    }

    fn line_writer(&mut self, _: &OperatorContext) -> Result<Box<dyn LineWriter>, String> {
        Ok(Box::new(StdoutWriter))
    }

    fn part_store(&mut self, _: &OperatorContext, directory: &str) -> Result<Box<dyn PartStore>, String> {
        fs::create_dir_all(directory).map_err(|error| format!("{directory}: cannot create: {error}"))?;
        Ok(Box::new(DirectoryParts { directory: PathBuf::from(directory) }))
    }

    fn custom_operator(&mut self, operator: &OperatorContext, name: &str) -> Option<Box<dyn Operator>> {
        self.operators.create(operator, name)
    }
}

/// A file read at any offset (so a restored source resumes where its checkpoint says).
struct FileReader {
    path: PathBuf,
    file: Option<File>,
}

impl SourceReader for FileReader {
    fn read(&mut self, offset: u64, max_bytes: usize, buffer: &mut Vec<u8>) -> Result<ReadOutcome, ReaderError> {
        let fail = |error: std::io::Error| ReaderError { message: format!("{}: {error}", self.path.display()) };
        if self.file.is_none() {
            self.file = Some(File::open(&self.path).map_err(fail)?);
        }
        let Some(file) = self.file.as_mut() else { unreachable!("opened above") };
        file.seek(SeekFrom::Start(offset)).map_err(fail)?;
        let before = buffer.len();
        let read = file.take(max_bytes as u64).read_to_end(buffer).map_err(fail)?;
        debug_assert_eq!(buffer.len() - before, read);
        Ok(if read == 0 { ReadOutcome::End } else { ReadOutcome::Data })
    }
}

/// A TCP connection read as it comes; it cannot seek, so a restored socket source goes on from
/// where the connection is (at-most-once for what was in flight).
struct SocketReader {
    stream: TcpStream,
    ended: bool,
}

impl SourceReader for SocketReader {
    fn read(&mut self, _offset: u64, max_bytes: usize, buffer: &mut Vec<u8>) -> Result<ReadOutcome, ReaderError> {
        if self.ended {
            return Ok(ReadOutcome::End);
        }
        let mut chunk = vec![0u8; max_bytes.min(64 * 1024)];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.ended = true;
                Ok(ReadOutcome::End)
            }
            Ok(read) => {
                buffer.extend_from_slice(&chunk[..read]);
                Ok(ReadOutcome::Data)
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Ok(ReadOutcome::NotReady)
            }
            Err(error) => Err(ReaderError { message: format!("socket: {error}") }),
        }
    }
}

/// Lines to standard output.
struct StdoutWriter;

impl LineWriter for StdoutWriter {
    fn write_line(&mut self, line: &str) -> Result<(), SinkIoError> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").map_err(|error| SinkIoError { message: format!("standard output: {error}") })
    }
}

/// The part files of one file sink directory.
struct DirectoryParts {
    directory: PathBuf,
}

impl DirectoryParts {
    fn pending(&self, part: &str) -> PathBuf {
        self.directory.join(format!("{PENDING_PREFIX}{part}"))
    }

    fn fail(&self, what: &str, path: &Path, error: std::io::Error) -> SinkIoError {
        SinkIoError { message: format!("{}: cannot {what}: {error}", path.display()) }
    }
}

impl PartStore for DirectoryParts {
    fn write_pending(&mut self, part: &str, bytes: &[u8]) -> Result<(), SinkIoError> {
        let path = self.pending(part);
        let mut file =
            OpenOptions::new().create(true).append(true).open(&path).map_err(|e| self.fail("open", &path, e))?;
        file.write_all(bytes).map_err(|e| self.fail("write", &path, e))?;
        file.sync_data().map_err(|e| self.fail("sync", &path, e))
    }

    fn commit(&mut self, part: &str) -> Result<(), SinkIoError> {
        let (pending, visible) = (self.pending(part), self.directory.join(part));
        if let Ok(file) = File::open(&pending) {
            file.sync_all().map_err(|e| self.fail("sync", &pending, e))?;
        }
        match fs::rename(&pending, &visible) {
            Ok(()) => Ok(()),
            // Already committed (a repeated notification after a restore), or a part that
            // received no record and so was never created: nothing to do.
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
            Err(error) => Err(self.fail("commit", &pending, error)),
        }
    }

    fn discard(&mut self, part: &str) -> Result<(), SinkIoError> {
        let path = self.pending(part);
        match fs::remove_file(&path) {
            Err(error) if error.kind() != ErrorKind::NotFound => Err(self.fail("discard", &path, error)),
            _ => Ok(()),
        }
    }

    fn pending_parts(&mut self) -> Result<Vec<String>, SinkIoError> {
        let entries = fs::read_dir(&self.directory).map_err(|e| self.fail("list", &self.directory, e))?;
        let mut parts: Vec<String> = entries
            .flatten()
            .filter_map(|entry| {
                entry.file_name().to_str().and_then(|n| n.strip_prefix(PENDING_PREFIX)).map(String::from)
            })
            .collect();
        parts.sort();
        Ok(parts)
    }
}
