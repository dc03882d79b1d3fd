//! Registry configuration: where and how often to publish, batch size, timeouts, common tags.

use std::path::PathBuf;
use std::time::Duration;

/// How a [`Registry`](crate::Registry) publishes. Build one by hand, start from
/// [`Config::default`], or read the environment (see the crate docs, "Configuration").
///
/// ```
/// use spectator::Config;
/// use std::time::Duration;
/// let config = Config {
///     uri: Some("http://127.0.0.1:7101/api/v4/update".into()),
///     frequency: Duration::from_secs(10),
///     ..Config::default()
/// };
/// assert_eq!(config.batch_size, 10_000);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The Atlas aggregator's publish endpoint (`http://…/api/v4/update`); `None` records but
    /// never publishes, unless [`output_location`](Config::output_location) names an output.
    pub uri: Option<String>,
    /// Where each step goes, when set (it wins over `uri`):
    ///
    /// | location | means |
    /// |---|---|
    /// | `http://…`, `https://…` | the Atlas aggregator, as `uri` |
    /// | `udp` | spectatord's UDP port, `udp://127.0.0.1:1234` |
    /// | `udp://host:port` | a spectatord UDP listener |
    /// | `unix` | spectatord's datagram socket, `unix:///run/spectatord/spectatord.unix` |
    /// | `unix:///path` | a unix datagram socket |
    /// | `file:///path`, `stdout`, `stderr` | spectatord protocol lines appended to a file or stream |
    /// | `memory` | lines kept in memory, read with [`Registry::take_written_lines`](crate::Registry::take_written_lines) |
    /// | `none` | record, never send |
    pub output_location: Option<String>,
    /// Step between publishes (default 5 s).
    pub frequency: Duration,
    /// Most measurements in one POST (default 10 000).
    pub batch_size: usize,
    /// Connect and request timeout for one POST (default 1 s).
    pub timeout: Duration,
    /// Tags added to every measurement on the wire; an id's own tag of the same key wins.
    pub common_tags: Vec<(String, String)>,
    /// A meter with no live handle and no update for this long is removed (default 15 min).
    pub meter_ttl: Duration,
    /// Most meters the registry holds (default 100 000). Past it, a new id gets a meter that
    /// reports nothing, and `spectator.meters{id=refused}` counts the refusals: a runaway
    /// loop of distinct ids cannot exhaust memory. Self-metrics (`spectator.*`) are exempt.
    pub max_meters: usize,
    /// Whether [`global()`](crate::global) registers the process metrics
    /// ([`runtime::register_process_metrics`](crate::runtime::register_process_metrics)).
    /// `SPECTATOR_RUNTIME_METRICS` containing `process`; default off.
    pub process_metrics: bool,
    /// Whether [`global()`](crate::global) registers the metrics of the tokio runtime it is
    /// first used on ([`runtime::register_tokio_metrics`](crate::runtime::register_tokio_metrics)).
    /// `SPECTATOR_RUNTIME_METRICS` containing `tokio`; default off.
    pub tokio_metrics: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            uri: None,
            output_location: None,
            frequency: Duration::from_secs(5),
            batch_size: 10_000,
            timeout: Duration::from_secs(1),
            common_tags: Vec::new(),
            meter_ttl: Duration::from_secs(15 * 60),
            max_meters: 100_000,
            process_metrics: false,
            tokio_metrics: false,
        }
    }
}

/// A configuration variable with a value that cannot be used.
///
/// ```
/// use spectator::Config;
/// let err = Config::from_lookup(|k| (k == "SPECTATOR_BATCH_SIZE").then(|| "lots".to_string()))
///     .unwrap_err();
/// assert_eq!(err.variable(), "SPECTATOR_BATCH_SIZE");
/// assert!(err.to_string().contains("\"lots\""));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    variable: &'static str,
    value: String,
    reason: String,
}

impl ConfigError {
    fn new(variable: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            variable,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The environment variable at fault, e.g. `SPECTATOR_FREQUENCY`.
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    /// Its value as found.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The Netflix environment variables and the common tag each one sets. Where two variables
/// feed one tag, the first non-blank one wins.
const NETFLIX_ENV_TAGS: &[(&str, &str)] = &[
    ("NETFLIX_APP", "nf.app"),
    ("NETFLIX_CLUSTER", "nf.cluster"),
    ("NETFLIX_AUTO_SCALE_GROUP", "nf.asg"),
    ("NETFLIX_STACK", "nf.stack"),
    ("EC2_REGION", "nf.region"),
    ("EC2_AVAILABILITY_ZONE", "nf.zone"),
    ("NETFLIX_INSTANCE_ID", "nf.node"),
    ("EC2_INSTANCE_ID", "nf.node"),
    ("NETFLIX_ACCOUNT_ID", "nf.account"),
    ("NETFLIX_CONTAINER_NAME", "nf.container"),
    ("TITUS_CONTAINER_NAME", "nf.container"),
    ("NETFLIX_PROCESS_NAME", "nf.process"),
];

/// Every variable [`Config::from_env`] reads.
const ENV_VARIABLES: &[&str] = &[
    "SPECTATOR_URI",
    "SPECTATOR_OUTPUT_LOCATION",
    "SPECTATOR_FREQUENCY",
    "SPECTATOR_BATCH_SIZE",
    "SPECTATOR_TIMEOUT",
    "SPECTATOR_COMMON_TAGS",
    "SPECTATOR_MAX_METERS",
    "SPECTATOR_RUNTIME_METRICS",
    "NETFLIX_APP",
    "NETFLIX_CLUSTER",
    "NETFLIX_AUTO_SCALE_GROUP",
    "NETFLIX_STACK",
    "EC2_REGION",
    "EC2_AVAILABILITY_ZONE",
    "NETFLIX_INSTANCE_ID",
    "EC2_INSTANCE_ID",
    "NETFLIX_ACCOUNT_ID",
    "NETFLIX_CONTAINER_NAME",
    "TITUS_CONTAINER_NAME",
    "NETFLIX_PROCESS_NAME",
];

/// Longest accepted frequency or timeout: one day.
const MAX_SECONDS: f64 = 86_400.0;

impl Config {
    /// Every variable [`Config::from_env`] reads.
    pub const ENV_VARIABLES: &'static [&'static str] = ENV_VARIABLES;
    /// The Netflix environment variables and the common tag each one sets. Where two
    /// variables feed one tag, the first non-blank one wins.
    pub const NETFLIX_ENV_TAGS: &'static [(&'static str, &'static str)] = NETFLIX_ENV_TAGS;

    /// Reads the process environment; see [`Config::from_lookup`] for the
    /// rules. A variable whose value is not valid Unicode is an error.
    pub fn from_env() -> Result<Config, ConfigError> {
        for &var in ENV_VARIABLES {
            if let Err(std::env::VarError::NotUnicode(raw)) = std::env::var(var) {
                return Err(ConfigError::new(
                    var,
                    &raw.to_string_lossy(),
                    "not valid Unicode",
                ));
            }
        }
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Builds a configuration from variables looked up with `get` (the environment, for
    /// [`Config::from_env`]). Values are trimmed; blank ones count as unset.
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `SPECTATOR_URI` | publish endpoint, an absolute `http`/`https` URL | none: record, never publish |
    /// | `SPECTATOR_OUTPUT_LOCATION` | where each step goes ([`Config::output_location`]); when `SPECTATOR_URI` is set too, both must say the same | none |
    /// | `SPECTATOR_FREQUENCY` | seconds between publishes, a positive decimal (`5`, `0.5`), at most one day | 5 |
    /// | `SPECTATOR_BATCH_SIZE` | measurements per POST, a positive integer | 10000 |
    /// | `SPECTATOR_TIMEOUT` | connect and request timeout in seconds, a positive decimal, at most one day | 1 |
    /// | `SPECTATOR_COMMON_TAGS` | `k=v,k2=v2`: extra tags on every measurement | none |
    /// | `SPECTATOR_RUNTIME_METRICS` | runtime metrics for [`global()`](crate::global): `process`, `tokio` or `process,tokio` (see [`crate::runtime`]) | none |
    /// | `SPECTATOR_MAX_METERS` | most meters the registry holds ([`Config::max_meters`]), a positive integer | 100000 |
    ///
    /// The Netflix variables in [`Config::NETFLIX_ENV_TAGS`] add `nf.*` common tags
    /// (`NETFLIX_INSTANCE_ID` before `EC2_INSTANCE_ID`, `NETFLIX_CONTAINER_NAME` before
    /// `TITUS_CONTAINER_NAME`). A key given both ways takes its `SPECTATOR_COMMON_TAGS` value.
    /// In `SPECTATOR_COMMON_TAGS`, blanks around entries, keys and values are trimmed, empty
    /// entries (`a=1,,b=2`, a trailing comma) are skipped, a value may contain `=`, and a
    /// repeated key keeps its last value; an entry without `=`, with an empty key or an empty
    /// value is an error.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a value that cannot be used.
    ///
    /// ```
    /// use spectator::Config;
    /// use std::time::Duration;
    /// let env = [("SPECTATOR_FREQUENCY", "0.5"), ("NETFLIX_APP", "www"),
    ///            ("SPECTATOR_COMMON_TAGS", "region=us, zone = a")];
    /// let config = Config::from_lookup(|k| {
    ///     env.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string())
    /// }).unwrap();
    /// assert_eq!(config.frequency, Duration::from_millis(500));
    /// assert_eq!(config.uri, None);
    /// assert_eq!(config.common_tags, [("nf.app".to_string(), "www".to_string()),
    ///     ("region".to_string(), "us".to_string()), ("zone".to_string(), "a".to_string())]);
    /// ```
    pub fn from_lookup<F>(get: F) -> Result<Config, ConfigError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let get = |k: &str| -> Option<String> {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut config = Config::default();

        if let Some(uri) = get("SPECTATOR_URI") {
            check_uri(&uri).map_err(|reason| ConfigError::new("SPECTATOR_URI", &uri, reason))?;
            config.uri = Some(uri);
        }
        if let Some(location) = get("SPECTATOR_OUTPUT_LOCATION") {
            Location::parse(&location).map_err(|reason| {
                ConfigError::new("SPECTATOR_OUTPUT_LOCATION", &location, reason)
            })?;
            if let Some(uri) = config.uri.as_deref().filter(|uri| *uri != location) {
                return Err(ConfigError::new(
                    "SPECTATOR_OUTPUT_LOCATION",
                    &location,
                    format!(
                        "SPECTATOR_URI is set too, to {uri:?}: set one of SPECTATOR_URI and \
                         SPECTATOR_OUTPUT_LOCATION, or both to the same value"
                    ),
                ));
            }
            config.output_location = Some(location);
        }
        if let Some(v) = get("SPECTATOR_FREQUENCY") {
            config.frequency = parse_seconds("SPECTATOR_FREQUENCY", &v)?;
        }
        if let Some(v) = get("SPECTATOR_BATCH_SIZE") {
            config.batch_size = parse_count("SPECTATOR_BATCH_SIZE", &v)?;
        }
        if let Some(v) = get("SPECTATOR_TIMEOUT") {
            config.timeout = parse_seconds("SPECTATOR_TIMEOUT", &v)?;
        }
        if let Some(v) = get("SPECTATOR_MAX_METERS") {
            config.max_meters = parse_count("SPECTATOR_MAX_METERS", &v)?;
        }
        if let Some(v) = get("SPECTATOR_RUNTIME_METRICS") {
            for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                match item {
                    "process" => config.process_metrics = true,
                    "tokio" => config.tokio_metrics = true,
                    other => {
                        return Err(ConfigError::new(
                            "SPECTATOR_RUNTIME_METRICS",
                            &v,
                            format!("{other:?} is not one of process, tokio"),
                        ))
                    }
                }
            }
        }

        let mut tags: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| match tags.iter_mut().find(|(tk, _)| tk == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => tags.push((k.to_string(), v.to_string())),
        };
        let mut seen: Vec<&str> = Vec::new();
        for &(var, key) in NETFLIX_ENV_TAGS {
            if seen.contains(&key) {
                continue;
            }
            if let Some(v) = get(var) {
                seen.push(key);
                set(key, &v);
            }
        }
        if let Some(raw) = get("SPECTATOR_COMMON_TAGS") {
            for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let Some((k, v)) = entry.split_once('=') else {
                    return Err(ConfigError::new(
                        "SPECTATOR_COMMON_TAGS",
                        &raw,
                        format!("entry {entry:?} is not key=value"),
                    ));
                };
                let (k, v) = (k.trim(), v.trim());
                if k.is_empty() || v.is_empty() {
                    return Err(ConfigError::new(
                        "SPECTATOR_COMMON_TAGS",
                        &raw,
                        format!("entry {entry:?} has an empty key or value"),
                    ));
                }
                set(k, v);
            }
        }
        config.common_tags = tags;
        Ok(config)
    }
}

impl Config {
    /// Where each step goes: [`output_location`](Config::output_location) when set, else
    /// `uri` (Atlas), else nowhere. `Err((location, reason))` when it cannot be used.
    pub(crate) fn location(&self) -> Result<Location, (String, String)> {
        match (&self.output_location, &self.uri) {
            (Some(l), _) => Location::parse(l).map_err(|reason| (l.clone(), reason)),
            (None, Some(uri)) => match check_uri(uri) {
                Ok(()) => Ok(Location::Atlas(uri.trim().to_owned())),
                Err(reason) => Err((uri.clone(), reason)),
            },
            (None, None) => Ok(Location::None),
        }
    }
}

/// A parsed output location (see [`Config::output_location`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// The Atlas aggregator at this URL.
    Atlas(String),
    /// A spectatord UDP listener, `host:port`.
    Udp(String),
    /// A unix datagram socket.
    Unix(PathBuf),
    /// Lines appended to a file.
    File(PathBuf),
    Stdout,
    Stderr,
    Memory,
    None,
}

/// spectatord's UDP port on the local host.
pub(crate) const SPECTATORD_UDP: &str = "127.0.0.1:1234";
/// spectatord's unix datagram socket.
pub(crate) const SPECTATORD_UNIX: &str = "/run/spectatord/spectatord.unix";

impl Location {
    /// Parses one of the forms in [`Config::output_location`]'s table; the error says why not.
    pub(crate) fn parse(location: &str) -> Result<Location, String> {
        let l = location.trim();
        let path = |p: &str, scheme: &str| {
            if p.starts_with('/') && p.len() > 1 {
                Ok(PathBuf::from(p))
            } else {
                Err(format!(
                    "{scheme}:// needs an absolute path, as in {scheme}:///var/run/x"
                ))
            }
        };
        Ok(match l {
            "udp" => Location::Udp(SPECTATORD_UDP.into()),
            "unix" => Location::Unix(PathBuf::from(SPECTATORD_UNIX)),
            "stdout" => Location::Stdout,
            "stderr" => Location::Stderr,
            "memory" => Location::Memory,
            "none" => Location::None,
            _ if l.starts_with("http://") || l.starts_with("https://") => {
                check_uri(l)?;
                Location::Atlas(l.to_owned())
            }
            _ => {
                if let Some(addr) = l.strip_prefix("udp://") {
                    check_host_port(addr)?;
                    Location::Udp(addr.to_owned())
                } else if let Some(p) = l.strip_prefix("unix://") {
                    Location::Unix(path(p, "unix")?)
                } else if let Some(p) = l.strip_prefix("file://") {
                    Location::File(path(p, "file")?)
                } else {
                    return Err("expected one of udp, udp://host:port, unix, unix:///path, \
                                file:///path, stdout, stderr, memory, none, http(s)://…"
                        .into());
                }
            }
        })
    }
}

/// Checks `host:port` (a name, an IPv4 address or a bracketed IPv6 one, and a port).
fn check_host_port(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("udp://{addr} has no port (udp://host:port)"))?;
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("udp://{addr} has no valid host (udp://host:port)"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("port {port:?} is not 1..=65535")),
    }
}

/// Checks that `uri` is an absolute `http` or `https` URL with a host (the HTTP client parses
/// it fully when it is built).
pub(crate) fn check_uri(uri: &str) -> Result<(), String> {
    let uri = uri.trim();
    let rest = if let Some(r) = uri.strip_prefix("http://") {
        r
    } else if let Some(r) = uri.strip_prefix("https://") {
        r
    } else {
        let scheme = uri.split_once(':').map_or(uri, |(s, _)| s);
        return Err(match uri.contains("://") || uri.contains(':') {
            true => format!("scheme {scheme:?} is not http or https"),
            false => "relative URL without a base".into(),
        });
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err("no host".into());
    }
    if uri.chars().any(char::is_whitespace) {
        return Err("contains whitespace".into());
    }
    Ok(())
}

/// A positive integer.
fn parse_count(variable: &'static str, v: &str) -> Result<usize, ConfigError> {
    match v.parse::<usize>() {
        Ok(0) => Err(ConfigError::new(variable, v, "must be > 0")),
        Ok(n) => Ok(n),
        Err(e) => Err(ConfigError::new(variable, v, e.to_string())),
    }
}

fn parse_seconds(variable: &'static str, v: &str) -> Result<Duration, ConfigError> {
    let secs: f64 = v
        .parse()
        .map_err(|_| ConfigError::new(variable, v, "not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(ConfigError::new(
            variable,
            v,
            "must be a positive number of seconds",
        ));
    }
    if secs > MAX_SECONDS {
        return Err(ConfigError::new(
            variable,
            v,
            "must be at most 86400 seconds",
        ));
    }
    let d = Duration::from_secs_f64(secs);
    if d < Duration::from_millis(1) {
        return Err(ConfigError::new(
            variable,
            v,
            "must be at least 0.001 seconds",
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| {
            env.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    fn tags(c: &Config) -> Vec<(&str, &str)> {
        c.common_tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn empty_env_is_default() {
        assert_eq!(cfg(&[]).unwrap(), Config::default());
    }

    #[test]
    fn every_spectator_variable() {
        let c = cfg(&[
            ("SPECTATOR_URI", " http://127.0.0.1:7101/api/v4/update "),
            ("SPECTATOR_FREQUENCY", "10"),
            ("SPECTATOR_BATCH_SIZE", "500"),
            ("SPECTATOR_TIMEOUT", "2.5"),
            ("SPECTATOR_COMMON_TAGS", "a=1, b = 2 ,,c=x=y,a=3,"),
            ("SPECTATOR_MAX_METERS", " 2000 "),
        ])
        .unwrap();
        assert_eq!(
            c.uri.as_deref(),
            Some("http://127.0.0.1:7101/api/v4/update")
        );
        assert_eq!(c.frequency, Duration::from_secs(10));
        assert_eq!(c.batch_size, 500);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(tags(&c), [("a", "3"), ("b", "2"), ("c", "x=y")]);
        assert_eq!(c.max_meters, 2000);
        assert_eq!(c.meter_ttl, Config::default().meter_ttl);
    }

    #[test]
    fn max_meters_default_and_errors() {
        assert_eq!(cfg(&[]).unwrap().max_meters, 100_000);
        let err = cfg(&[("SPECTATOR_MAX_METERS", "lots")]).unwrap_err();
        assert_eq!(err.variable(), "SPECTATOR_MAX_METERS");
        assert_eq!(
            err.to_string(),
            "invalid SPECTATOR_MAX_METERS=\"lots\": invalid digit found in string"
        );
        let err = cfg(&[("SPECTATOR_MAX_METERS", "0")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid SPECTATOR_MAX_METERS=\"0\": must be > 0"
        );
    }

    #[test]
    fn netflix_environment() {
        let env = [
            ("NETFLIX_APP", "www"),
            ("NETFLIX_CLUSTER", "www-main"),
            ("NETFLIX_AUTO_SCALE_GROUP", "www-main-v001"),
            ("NETFLIX_STACK", "main"),
            ("EC2_REGION", "us-east-1"),
            ("EC2_AVAILABILITY_ZONE", "us-east-1a"),
            ("EC2_INSTANCE_ID", "i-ec2"),
            ("NETFLIX_ACCOUNT_ID", "1234"),
            ("TITUS_CONTAINER_NAME", "titus"),
            ("NETFLIX_PROCESS_NAME", "proc"),
            ("SPECTATOR_COMMON_TAGS", "nf.stack=override"),
        ];
        let c = cfg(&env).unwrap();
        assert_eq!(
            tags(&c),
            [
                ("nf.app", "www"),
                ("nf.cluster", "www-main"),
                ("nf.asg", "www-main-v001"),
                ("nf.stack", "override"),
                ("nf.region", "us-east-1"),
                ("nf.zone", "us-east-1a"),
                ("nf.node", "i-ec2"),
                ("nf.account", "1234"),
                ("nf.container", "titus"),
                ("nf.process", "proc"),
            ]
        );
        // The first of two alternates wins.
        let c = cfg(&[
            ("NETFLIX_INSTANCE_ID", "i-netflix"),
            ("EC2_INSTANCE_ID", "i-ec2"),
            ("NETFLIX_CONTAINER_NAME", "main"),
            ("TITUS_CONTAINER_NAME", "titus"),
        ])
        .unwrap();
        assert_eq!(
            tags(&c),
            [("nf.node", "i-netflix"), ("nf.container", "main")]
        );
        // Blank values are ignored, so the alternate is used.
        let c = cfg(&[("NETFLIX_INSTANCE_ID", "  "), ("EC2_INSTANCE_ID", "i-ec2")]).unwrap();
        assert_eq!(tags(&c), [("nf.node", "i-ec2")]);
    }

    #[test]
    fn blank_values_are_unset() {
        let blank = [
            ("SPECTATOR_URI", ""),
            ("SPECTATOR_FREQUENCY", " "),
            ("SPECTATOR_BATCH_SIZE", "\t"),
            ("SPECTATOR_TIMEOUT", ""),
            ("SPECTATOR_COMMON_TAGS", "  "),
            ("SPECTATOR_MAX_METERS", " "),
            ("NETFLIX_APP", ""),
        ];
        assert_eq!(cfg(&blank).unwrap(), Config::default());
    }

    #[test]
    fn fractional_seconds() {
        let c = cfg(&[
            ("SPECTATOR_FREQUENCY", "0.25"),
            ("SPECTATOR_TIMEOUT", "1e-1"),
        ])
        .unwrap();
        assert_eq!(c.frequency, Duration::from_millis(250));
        assert_eq!(c.timeout, Duration::from_millis(100));
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        let bad = [
            ("SPECTATOR_URI", "not a url"),
            ("SPECTATOR_URI", "ftp://host/x"),
            ("SPECTATOR_FREQUENCY", "five"),
            ("SPECTATOR_FREQUENCY", "0"),
            ("SPECTATOR_FREQUENCY", "-5"),
            ("SPECTATOR_FREQUENCY", "NaN"),
            ("SPECTATOR_FREQUENCY", "inf"),
            ("SPECTATOR_FREQUENCY", "1e300"),
            ("SPECTATOR_FREQUENCY", "0.0000001"),
            ("SPECTATOR_FREQUENCY", "5s"),
            ("SPECTATOR_BATCH_SIZE", "0"),
            ("SPECTATOR_BATCH_SIZE", "-1"),
            ("SPECTATOR_BATCH_SIZE", "1.5"),
            ("SPECTATOR_BATCH_SIZE", "99999999999999999999999"),
            ("SPECTATOR_MAX_METERS", "0"),
            ("SPECTATOR_MAX_METERS", "-10"),
            ("SPECTATOR_MAX_METERS", "1e6"),
            ("SPECTATOR_MAX_METERS", "100 000"),
            ("SPECTATOR_TIMEOUT", "soon"),
            ("SPECTATOR_TIMEOUT", "0"),
            ("SPECTATOR_COMMON_TAGS", "novalue"),
            ("SPECTATOR_COMMON_TAGS", "=v"),
            ("SPECTATOR_COMMON_TAGS", "k="),
            ("SPECTATOR_COMMON_TAGS", "a=1,b"),
        ];
        for (var, value) in bad {
            let err = cfg(&[(var, value)]).expect_err(value);
            assert_eq!(err.variable(), var);
            assert_eq!(err.value(), value.trim());
            let msg = err.to_string();
            assert!(msg.contains(var) && msg.contains(value.trim()), "{msg}");
        }
    }
}
