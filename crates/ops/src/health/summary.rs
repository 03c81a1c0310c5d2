//! One-line explanations of a report's sensors, for tables and status-change lines.

use std::collections::BTreeMap;

use std::path::Path;

use super::{ActionRecord, ConfigSource, HealthConfig, HealthReport, Probe};

impl HealthReport {
    /// The sensors below 1 with their reasons (`all sensors 1.00` when none is).
    pub fn weakest(&self) -> String {
        let weak: Vec<String> = self
            .sensors
            .named()
            .iter()
            .filter(|(_, v)| *v < 1.0)
            .map(|(name, v)| format!("{name} {v:.2}: {}", self.explain(name)))
            .collect();
        if weak.is_empty() {
            "all sensors 1.00".into()
        } else {
            weak.join("; ")
        }
    }

    /// One line on why `sensor` (a name of [`super::Sensors::named`]) has its value.
    pub fn explain(&self, sensor: &str) -> String {
        let d = &self.details;
        match sensor {
            "m1_process" | "m2_heartbeat" => {
                let mut parts: Vec<String> = d
                    .processes
                    .iter()
                    .map(|(role, r)| {
                        let age = r
                            .age_seconds
                            .map_or(String::new(), |a| format!(", beat {a:.1} s ago"));
                        match &r.error {
                            Some(e) => format!("{role}: {e}{age}"),
                            None => format!("{role}: pid {}{age}", r.pid.unwrap_or(0)),
                        }
                    })
                    .collect();
                if sensor == "m1_process" {
                    parts.extend(self.slots());
                } else {
                    // The registry heartbeats that count and are not fresh.
                    parts.extend(
                        d.cluster
                            .iter()
                            .filter(|(_, p)| p.expected && p.heartbeat < 1.0)
                            .map(|(id, p)| {
                                format!("process {id}: registered {:.1} s ago", p.age_seconds)
                            }),
                    );
                    if !d.cluster_roles.is_empty() && parts.is_empty() {
                        parts.push(match d.registry_error {
                            None => "every expected process registered within 30 s".into(),
                            Some(_) => "no registered process listed".into(),
                        });
                    }
                }
                if parts.is_empty() {
                    return "no roles configured".into();
                }
                parts.join("; ")
            }
            "m3_data_freshness" => {
                if d.feeds.is_empty() {
                    return "no feeds configured".into();
                }
                d.feeds
                    .iter()
                    .map(|(name, f)| match (&f.error, f.age_seconds) {
                        (Some(e), _) => format!("{name} {}: {e}", f.state),
                        (None, Some(age)) => format!("{name} {} ({age:.1} s old)", f.state),
                        (None, None) => format!("{name} {}", f.state),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }
            "m4_control_plane" => probes(&d.control_plane),
            _ => probes(&d.coherence),
        }
    }
}

impl HealthReport {
    /// `processes coordinator 2/2, worker 2/3` (filled of expected slots), noting when the
    /// registry could not be listed (the `registry` check says why); nothing without
    /// `processes:`.
    fn slots(&self) -> Option<String> {
        let d = &self.details;
        if d.cluster_roles.is_empty() {
            return None;
        }
        let counts: Vec<String> = d
            .cluster_roles
            .iter()
            .map(|(role, r)| format!("{role} {}/{}", r.running.min(r.expected), r.expected))
            .collect();
        let mut line = format!("processes {}", counts.join(", "));
        if d.registry_error.is_some() {
            line.push_str(" (the registry was not listed)");
        }
        Some(line)
    }

    /// The processes of the cluster's registry as a table, one line each (with a line on why
    /// the registry could not be listed); empty without a registry.
    pub fn cluster_text(&self) -> String {
        let d = &self.details;
        let mut out = String::new();
        if let Some(e) = &d.registry_error {
            out.push_str(&format!("registered processes: none listed: {e}\n"));
        }
        if d.cluster.is_empty() {
            return out;
        }
        let rows: Vec<Vec<String>> = d
            .cluster
            .iter()
            .map(|(id, p)| {
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "-".to_string()
                    } else {
                        v.join(",")
                    }
                };
                vec![
                    id.clone(),
                    list(&p.roles),
                    format!("{}:{}", p.host, p.pid),
                    list(&p.pools),
                    p.in_flight.to_string(),
                    p.state.clone(),
                    format!("{:.1} s ago ({:.2})", p.age_seconds, p.heartbeat),
                    if p.expected { "yes" } else { "no" }.to_string(),
                ]
            })
            .collect();
        out.push_str(&tradeloom_core::table::render(
            &[
                "process",
                "roles",
                "host:pid",
                "pools",
                "in_flight",
                "state",
                "registered",
                "expected",
            ],
            &rows,
        ));
        out
    }
}

fn probes(p: &BTreeMap<String, Probe>) -> String {
    if p.is_empty() {
        return "nothing to check".into();
    }
    p.iter()
        .map(|(name, probe)| match &probe.error {
            None => format!("{name} ok"),
            Some(e) => format!("{name} FAILED: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Says what a check is based on when it is not `health.yaml`: the heartbeat roles found, or
/// that nothing is configured (then the command exits with `nothing_exit`).
pub fn config_note(
    data_dir: &Path,
    config: &HealthConfig,
    source: ConfigSource,
    nothing_exit: u8,
) -> Option<String> {
    match source {
        ConfigSource::File => None,
        ConfigSource::Heartbeats => Some(format!(
            "no {}: checking the heartbeats found under {}: {}",
            data_dir.join(super::CONFIG_FILE).display(),
            super::heartbeat_dir(data_dir).display(),
            config.roles.join(", ")
        )),
        ConfigSource::Nothing => Some(format!(
            "NOTHING CONFIGURED: no {} and no heartbeat files under {}; only the store and the \
             data dir were checked (exit {nothing_exit})",
            data_dir.join(super::CONFIG_FILE).display(),
            super::heartbeat_dir(data_dir).display()
        )),
    }
}

impl HealthReport {
    /// The status line and a table of the sensors with their explanations.
    pub fn text(&self) -> String {
        let mut out = format!(
            "status {}  rm_meta {:.3}  (checked {})\n",
            self.status, self.rm_meta, self.checked_at
        );
        let rows: Vec<Vec<String>> = self
            .sensors
            .named()
            .iter()
            .map(|(name, value)| vec![name.to_string(), format!("{value:.2}"), self.explain(name)])
            .collect();
        out.push_str(&tradeloom_core::table::render(
            &["sensor", "value", "why"],
            &rows,
        ));
        out.push_str(&self.cluster_text());
        out
    }
}

impl ActionRecord {
    /// `<at>  recovery <action>: <outcome> (<reason>)`.
    pub fn line(&self) -> String {
        format!(
            "{}  recovery {}: {} ({})",
            self.at, self.action, self.outcome, self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{HealthConfig, Observations, evaluate};

    #[test]
    fn weakest_names_the_failed_sensor_with_its_reason() {
        let report = evaluate(
            &HealthConfig::default(),
            &Observations {
                control_plane: BTreeMap::from([("store".to_string(), Probe::ok())]),
                coherence: BTreeMap::from([(
                    "store_enums".to_string(),
                    Probe::failed("jobs: 1 rows with status `exploded`"),
                )]),
                ..Observations::default()
            },
            chrono::Utc::now(),
        );
        assert_eq!(report.explain("m4_control_plane"), "store ok");
        assert_eq!(report.explain("m3_data_freshness"), "no feeds configured");
        assert!(
            report.weakest().contains(
                "m5_coherence 0.00: store_enums FAILED: jobs: 1 rows with status `exploded`"
            ),
            "{}",
            report.weakest()
        );
        assert!(!report.weakest().contains("m4_control_plane"));
    }

    fn registered(id: &str, roles: &[&str], age_s: i64) -> tradeloom_queue::ProcessEntry {
        let at = chrono::Utc::now() - chrono::Duration::seconds(age_s);
        tradeloom_queue::ProcessEntry {
            id: id.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            pools: vec!["agent".into(), "http".into()],
            concurrency: 2,
            host: "node-b".into(),
            pid: 777,
            addr: None,
            started_at: at,
            heartbeat_at: at,
            in_flight: 3,
            state: "running".into(),
            version: "0".into(),
        }
    }

    #[test]
    fn the_text_report_has_a_line_per_registered_process() {
        let config = HealthConfig {
            processes: BTreeMap::from([("worker".to_string(), 3)]),
            ..HealthConfig::default()
        };
        let now = chrono::Utc::now();
        let observations = Observations {
            control_plane: BTreeMap::from([("store".to_string(), Probe::ok())]),
            registry: Some(Ok(vec![
                registered("node-b-777-aa", &["worker"], 1),
                registered("node-b-778-bb", &["worker"], 45),
                registered("node-c-9-cc", &["api"], 2),
            ])),
            ..Observations::default()
        };
        let report = evaluate(&config, &observations, now);
        let text = report.text();
        let lines: Vec<&str> = text.lines().collect();
        let header = lines
            .iter()
            .position(|l| l.starts_with("process "))
            .unwrap_or_else(|| panic!("no process table in\n{text}"));
        assert!(lines[header].contains("in_flight"), "{text}");
        let rows = &lines[header + 1..];
        assert_eq!(rows.len(), 3, "{text}");
        assert!(rows[0].starts_with("node-b-777-aa  worker"), "{text}");
        assert!(
            rows[0].contains("node-b:777") && rows[0].contains("agent,http"),
            "{text}"
        );
        assert!(
            rows[1].contains("(0.50)") && rows[1].ends_with("yes"),
            "{text}"
        );
        assert!(
            rows[2].starts_with("node-c-9-cc") && rows[2].ends_with("no"),
            "{text}"
        );
        assert_eq!(report.explain("m1_process"), "processes worker 2/3");
        assert!(
            report
                .explain("m2_heartbeat")
                .contains("process node-b-778-bb: registered 45."),
            "{}",
            report.explain("m2_heartbeat")
        );
        // The registry down: said in the table's place and in M1's reason.
        let observations = Observations {
            registry: Some(Err("listing the process registry (redis): refused".into())),
            ..observations
        };
        let report = evaluate(&config, &observations, now);
        assert!(
            report.text().contains(
                "registered processes: none listed: listing the process registry (redis): refused"
            ),
            "{}",
            report.text()
        );
        assert_eq!(
            report.explain("m1_process"),
            "processes worker 0/3 (the registry was not listed)"
        );
        assert_eq!(
            report.explain("m2_heartbeat"),
            "no registered process listed"
        );
        assert!(
            report
                .explain("m4_control_plane")
                .contains("registry FAILED: listing the process registry (redis): refused")
        );
    }
}
