//! Long-running `tradeloom` processes for end-to-end tests: `mock-llm` and `serve`, each on a
//! free loopback port (`--addr 127.0.0.1:0`, the port read from the first line it prints),
//! killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A child process killed (SIGKILL) on drop.
pub struct Service {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    fn start(args: &[&str], extra_env: &[(&str, &str)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradeloom"));
        cmd.args(args)
            .current_dir(crate::repo())
            .env("RUST_LOG", "warn")
            .env_remove("OPENAI_API_BASE")
            .env_remove("OPENAI_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("tradeloom starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a first line");
        let start = line
            .find("http://")
            .unwrap_or_else(|| panic!("no URL in {line:?}"));
        let url: String = line[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches("/v1")
            .to_string();
        Service { child, url }
    }

    /// `tradeloom mock-llm`; `url` is the server root (append `/v1` for models).
    pub fn mock_llm() -> Service {
        Self::start(&["mock-llm", "--addr", "127.0.0.1:0"], &[])
    }

    /// `tradeloom serve --addr 127.0.0.1:0` on `data_dir` with more arguments and environment.
    pub fn serve_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut all = vec![
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        Self::start(&all, env)
    }

    /// `host:port` of this service, for `serve --http-allow`.
    pub fn authority(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// `tradeloom serve` on `data_dir` whose outbound requests (simulation and agent models)
    /// may reach `mock`: `--http-allow 127.0.0.1:PORT`, that port only.
    pub fn serve_for(data_dir: &Path, mock: &Service) -> Service {
        Self::serve_with(
            data_dir,
            &["--http-allow", mock.authority()],
            &[("MAX_CONCURRENT_JOBS", "1")],
        )
    }

    /// `tradeloom serve` on `data_dir` (SQLite under it).
    pub fn serve(data_dir: &Path, max_concurrent_jobs: &str) -> Service {
        Self::start(
            &[
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--data-dir",
                data_dir.to_str().unwrap(),
            ],
            &[("MAX_CONCURRENT_JOBS", max_concurrent_jobs)],
        )
    }
}
