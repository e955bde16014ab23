//! Operators' IO inside the simulator: file sources and file sinks on the simulated storage.
//! Print sinks' lines are counted and dropped (only file sinks' committed output is checked).
//! Sockets do not exist here.
//!
//! Part files follow the same two-phase protocol as on a real disk (`nodes/src/local`): a part
//! is appended under a hidden pending name (`.pending-<part>`) and made visible by a rename on
//! commit, so the visible parts of a sink directory are exactly its committed output.

use crate::disk::{SharedDisk, lock};
use weir_core::dataflow::operators::{
    Connectors, LineWriter, OperatorContext, PartStore, ReadOutcome, ReaderError, ReaderRequest, SinkIoError,
    SourceReader,
};
use weir_core::dataflow::state::{MemoryStateStore, StateStore};

use weir_core::dataflow::operators::PENDING_PART_PREFIX as PENDING_PREFIX;

/// The connectors of every simulated task.
pub struct SimConnectors {
    /// The shared storage.
    pub disk: SharedDisk,
}

impl Connectors for SimConnectors {
    fn source_reader(
        &mut self,
        _: &OperatorContext,
        request: ReaderRequest<'_>,
    ) -> Result<Box<dyn SourceReader>, String> {
        match request {
            ReaderRequest::File { path } => {
                Ok(Box::new(DiskReader { disk: self.disk.clone(), path: path.to_string() }))
            }
            ReaderRequest::Socket { host, port } => {
                Err(format!("{host}:{port}: socket sources cannot run in the simulator (use a file or a generator)"))
            }
        }
    }

    fn line_writer(&mut self, _: &OperatorContext) -> Result<Box<dyn LineWriter>, String> {
        Ok(Box::new(DroppedLines))
    }

    fn part_store(&mut self, _: &OperatorContext, directory: &str) -> Result<Box<dyn PartStore>, String> {
        Ok(Box::new(DiskParts { disk: self.disk.clone(), directory: directory.trim_end_matches('/').to_string() }))
    }

    fn keyed_state_store(&mut self, _operator: &OperatorContext) -> Result<Box<dyn StateStore>, String> {
        Ok(Box::new(MemoryStateStore::new()))
    }
}

/// A file on the simulated storage, read at any offset.
struct DiskReader {
    disk: SharedDisk,
    path: String,
}

impl SourceReader for DiskReader {
    fn read(&mut self, offset: u64, max_bytes: usize, buffer: &mut Vec<u8>) -> Result<ReadOutcome, ReaderError> {
        let disk = lock(&self.disk);
        let Some(bytes) = disk.read(&self.path) else {
            return Err(ReaderError { message: format!("{}: no such file", self.path) });
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let end = start.saturating_add(max_bytes).min(bytes.len());
        buffer.extend_from_slice(&bytes[start..end]);
        Ok(if end == start { ReadOutcome::End } else { ReadOutcome::Data })
    }
}

/// A print sink's output: nothing in the simulation reads it.
struct DroppedLines;

impl LineWriter for DroppedLines {
    fn write_line(&mut self, _line: &str) -> Result<(), SinkIoError> {
        Ok(())
    }
}

struct DiskParts {
    disk: SharedDisk,
    directory: String,
}

impl DiskParts {
    fn pending(&self, part: &str) -> String {
        format!("{}/{PENDING_PREFIX}{part}", self.directory)
    }
}

impl PartStore for DiskParts {
    fn write_pending(&mut self, part: &str, bytes: &[u8]) -> Result<(), SinkIoError> {
        let path = self.pending(part);
        lock(&self.disk).try_append(&path, bytes).map_err(|message| SinkIoError { message })
    }

    fn commit(&mut self, part: &str) -> Result<(), SinkIoError> {
        let (pending, visible) = (self.pending(part), format!("{}/{part}", self.directory));
        // Already committed, or never written: nothing to do (as a rename of a missing file).
        lock(&self.disk).rename(&pending, &visible);
        Ok(())
    }

    fn discard(&mut self, part: &str) -> Result<(), SinkIoError> {
        let path = self.pending(part);
        lock(&self.disk).remove(&path);
        Ok(())
    }

    fn pending_parts(&mut self) -> Result<Vec<String>, SinkIoError> {
        let names = lock(&self.disk).list(&self.directory);
        Ok(names.into_iter().filter_map(|name| name.strip_prefix(PENDING_PREFIX).map(String::from)).collect())
    }
}

/// The committed lines of every file sink directory in `directories`, sorted (the order of
/// lines across parts carries no meaning).
pub fn committed_lines(disk: &SharedDisk, directories: &[String]) -> Vec<String> {
    let disk = lock(disk);
    let mut lines = Vec::new();
    for directory in directories {
        for name in disk.list(directory) {
            if name.starts_with(PENDING_PREFIX) {
                continue;
            }
            let Some(bytes) = disk.read(&format!("{}/{name}", directory.trim_end_matches('/'))) else { continue };
            lines.extend(String::from_utf8_lossy(bytes).lines().map(String::from));
        }
    }
    lines.sort();
    lines
}
