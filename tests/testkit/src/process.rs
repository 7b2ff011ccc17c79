//! A running `farm` process: its JSON log (stderr) collected line by line,
//! the address from its "listening" line, signals, and its exit. Dropping
//! it kills the process, so a failed test leaves nothing running.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

/// A process that never said it was listening.
#[derive(Debug)]
pub struct NotListening {
    /// What was started (`farm api …`).
    pub what: String,
    /// Its exit code, if it has exited (-1: killed by a signal).
    pub exited: Option<i32>,
    /// The end of its log.
    pub log_tail: String,
}

impl std::fmt::Display for NotListening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.exited {
            Some(code) => format!("it exited with {code}"),
            None => "it is still running".to_string(),
        };
        write!(f, "`{}` never reported listening ({state}); its log ends:\n{}", self.what, self.log_tail)
    }
}

impl std::error::Error for NotListening {}

#[derive(Debug)]
pub struct FarmProcess {
    what: String,
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
    listening: mpsc::Receiver<String>,
}

impl FarmProcess {
    /// Starts `command` (a `farm` command with its arguments and
    /// environment as the caller wants them) with a JSON log on stderr.
    /// The last `keep_lines` lines of the log are kept: a long benchmark
    /// logs a line per job.
    pub fn spawn(mut command: Command, keep_lines: usize) -> std::io::Result<Self> {
        // The program by its name, the arguments as given.
        let program = std::path::Path::new(command.get_program());
        let what = std::iter::once(program.file_name().unwrap_or(program.as_os_str()))
            .chain(command.get_args())
            .map(|part| part.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        command.env("FARM_LOG_FORMAT", "json");
        let mut child = command.spawn()?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (sender, listening) = mpsc::channel();
        let sink = log.clone();
        let keep_lines = keep_lines.max(1);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let address = serde_json::from_str::<Value>(&line).ok().and_then(|event| {
                    let listening = event["message"].as_str().is_some_and(|m| m.ends_with("listening"));
                    event["addr"].as_str().filter(|_| listening).map(str::to_string)
                });
                // Logged first: whoever hears of the address finds the line.
                {
                    let mut log = sink.lock().expect("log lock");
                    if log.len() == keep_lines {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
                if let Some(address) = address {
                    let _ = sender.send(address);
                }
            }
        });
        Ok(Self { what, child, log, listening })
    }

    /// The address of the process's first (next) "listening" log line, or
    /// why there is none within `patience`.
    pub fn wait_for_listening(&mut self, patience: Duration) -> Result<String, NotListening> {
        match self.listening.recv_timeout(patience) {
            Ok(address) => Ok(address),
            Err(why) => {
                // Its log ended: it is exiting, so say how it ended.
                let exited = match why {
                    mpsc::RecvTimeoutError::Disconnected => self.wait_exit(Duration::from_secs(5)),
                    mpsc::RecvTimeoutError::Timeout => self.exited(),
                };
                Err(NotListening { what: self.what.clone(), exited, log_tail: self.tail(40) })
            }
        }
    }

    /// The whole kept log.
    pub fn logs(&self) -> String {
        self.tail(usize::MAX)
    }

    /// The last `lines` lines of the log.
    pub fn tail(&self, lines: usize) -> String {
        let log = self.log.lock().expect("log lock");
        let skip = log.len().saturating_sub(lines);
        log.iter().skip(skip).cloned().collect::<Vec<_>>().join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `KILL`, `STOP`); whether `kill` ran
    /// and succeeded.
    pub fn signal(&self, name: &str) -> bool {
        Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// The exit code, once the process has exited; a death by signal is -1.
    pub fn exited(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().map(|status| status.code().unwrap_or(-1))
    }

    /// Waits up to `patience` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, patience: Duration) -> Option<i32> {
        crate::wait_until_blocking(patience, || self.exited())
    }

    /// SIGTERM, then up to `patience` for the process to exit; its exit
    /// code, or `None` if it is still running.
    pub fn terminate(&mut self, patience: Duration) -> Option<i32> {
        self.signal("TERM");
        self.wait_exit(patience)
    }
}

impl Drop for FarmProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AsRef<FarmProcess> for FarmProcess {
    fn as_ref(&self) -> &FarmProcess {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for `farm`: a shell that logs like it, then waits.
    fn fake_farm(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn the_listening_address_is_read_from_the_log_and_the_log_keeps_its_tail() {
        let script = r#"for i in 1 2 3 4 5; do echo "{\"message\":\"line $i\"}" >&2; done
                        echo '{"message":"api listening","addr":"127.0.0.1:4242"}' >&2; exec sleep 30"#;
        let mut process = FarmProcess::spawn(fake_farm(script), 3).unwrap();
        assert_eq!(process.wait_for_listening(Duration::from_secs(10)).unwrap(), "127.0.0.1:4242");
        let logs = process.logs();
        assert!(!logs.contains("line 1") && logs.contains("line 5") && logs.contains("listening"), "{logs}");
        assert_eq!(process.exited(), None);
        assert_eq!(process.terminate(Duration::from_secs(10)), Some(-1), "sleep dies of SIGTERM");
    }

    #[test]
    fn a_process_that_never_listens_says_how_it_ended() {
        let mut process = FarmProcess::spawn(fake_farm("echo 'no database' >&2; exit 3"), 100).unwrap();
        let error = process.wait_for_listening(Duration::from_secs(2)).unwrap_err();
        assert_eq!(error.exited, Some(3));
        assert!(error.to_string().contains("exited with 3") && error.to_string().contains("no database"), "{error}");
    }
}
