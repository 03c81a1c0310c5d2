//! The processes of a benchmark: a `tradeloom serve` on loopback, and a cluster of processes
//! (`serve --roles api`, a `coordinator`, `worker`s) on a scratch PostgreSQL database and a
//! fresh Redis key prefix, removed afterwards. Used by `bench workflows` and `bench simulate`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tradeloom_runs::bench::peer;

/// A `tradeloom serve` child process on a loopback port, killed when dropped.
pub(super) struct ServeChild {
    child: Child,
    pub(super) url: String,
    _dir: tempfile::TempDir,
}

impl ServeChild {
    /// `serve` with `extra` flags on data dir `dir`.
    pub(super) fn start_with(
        binary: &PathBuf,
        extra: &[String],
        dir: tempfile::TempDir,
    ) -> Result<Self> {
        let log = std::fs::File::create(dir.path().join("serve.log"))?;
        let mut child = Command::new(binary)
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--rate-limit-global",
                "0",
                "--rate-limit-per-key",
                "0",
                "--rate-limit-runs-light",
                "0",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} serve", binary.display()))?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                bail!(
                    "{} serve exited before listening; see its log in {}",
                    binary.display(),
                    dir.path().display()
                );
            };
            let line = line?;
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
        };
        // Keep reading stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ServeChild {
            child,
            url,
            _dir: dir,
        })
    }

    pub(super) fn cpu_seconds(&self) -> Result<f64> {
        Ok(peer::process_cpu_seconds(self.child.id())?)
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `coordinator` or `worker` child of a benchmark cluster, killed when dropped.
pub(super) struct MemberChild(Child);

impl MemberChild {
    pub(super) fn start(
        binary: &PathBuf,
        command: &str,
        flags: &[String],
        dir: &std::path::Path,
    ) -> Result<Self> {
        let log = std::fs::File::create(
            dir.join(format!("{command}-{}.log", uuid::Uuid::now_v7().simple())),
        )?;
        let mut child = Command::new(binary)
            .arg("--data-dir")
            .arg(dir)
            .arg(command)
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} {command}", binary.display()))?;
        let stdout = child.stdout.take().context("the child's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next() {
            Some(Ok(line)) if line.contains("running as") => {}
            _ => {
                let _ = child.kill();
                bail!("{command} did not start; see its log in {}", dir.display());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Ok(MemberChild(child))
    }
}

impl Drop for MemberChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The processes serving one burst: `serve` alone, or a cluster (its API first).
pub(super) struct Servers {
    pub(super) api: ServeChild,
    members: Vec<MemberChild>,
    /// The scratch database and key prefix to drop afterwards.
    scratch: Option<(tradeloom_store::ScratchDatabase, String, String)>,
}

impl Servers {
    pub(super) fn cpu_seconds(&self) -> Result<f64> {
        let mut total = self.api.cpu_seconds()?;
        for m in &self.members {
            total += peer::process_cpu_seconds(m.0.id())?;
        }
        Ok(total)
    }
}

/// Where a burst runs.
#[derive(Clone, Copy, Debug)]
pub(super) enum Setup {
    /// `serve` on its SQLite file (the embedded default).
    Embedded,
    /// `serve` alone on a scratch PostgreSQL database.
    ServePostgres,
    /// `serve --roles api`, a coordinator and this many workers on PostgreSQL and Redis.
    Cluster(usize),
}

/// Starts the processes of `setup`, each with the flags `extra` too (e.g. `--http-allow`).
pub(super) fn start_servers(
    binary: &PathBuf,
    setup: Setup,
    postgres_url: Option<&str>,
    redis_url: Option<&str>,
    extra: &[String],
    rt: &tokio::runtime::Runtime,
) -> Result<Servers> {
    let (Setup::ServePostgres | Setup::Cluster(_)) = setup else {
        return Ok(Servers {
            api: ServeChild::start_with(binary, extra, tempfile::tempdir()?)?,
            members: Vec::new(),
            scratch: None,
        });
    };
    let (Some(pg), Some(redis)) = (postgres_url, redis_url) else {
        bail!("--cluster-workers needs --postgres-url and --redis-url");
    };
    let db = rt
        .block_on(tradeloom_store::ScratchDatabase::create(pg, "tl_bench"))
        .with_context(|| {
            format!(
                "--postgres-url {}: cannot create a scratch database",
                tradeloom_core::redact_userinfo(pg)
            )
        })?;
    let prefix = format!("tl-bench-{}:", uuid::Uuid::now_v7().simple());
    let dir = tempfile::tempdir()?;
    let data = dir.path().to_path_buf();
    let mut flags: Vec<String> = vec!["--database-url".into(), db.url().into()];
    flags.extend(extra.iter().cloned());
    if let Setup::Cluster(_) = setup {
        flags.extend([
            "--redis-url".into(),
            redis.to_string(),
            "--redis-prefix".into(),
            prefix.clone(),
        ]);
    }
    let mut api_flags = flags.clone();
    if let Setup::Cluster(_) = setup {
        api_flags.extend(["--roles".into(), "api".into()]);
    }
    let api = ServeChild::start_with(binary, &api_flags, dir)?;
    let mut members = Vec::new();
    if let Setup::Cluster(workers) = setup {
        members.push(MemberChild::start(binary, "coordinator", &flags, &data)?);
        for _ in 0..workers {
            members.push(MemberChild::start(binary, "worker", &flags, &data)?);
        }
    }
    Ok(Servers {
        api,
        members,
        scratch: Some((db, redis.to_string(), prefix)),
    })
}

/// Drops the scratch database and deletes the key prefix of a cluster.
pub(super) fn stop_servers(servers: Servers, rt: &tokio::runtime::Runtime) {
    let Servers {
        api,
        members,
        scratch,
    } = servers;
    drop(members);
    drop(api);
    if let Some((db, redis, prefix)) = scratch {
        let _ = rt.block_on(db.drop_database());
        if let Ok(client) = redis::Client::open(redis.as_str())
            && let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(2))
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut con)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(keys).exec(&mut con);
            }
        }
    }
}
