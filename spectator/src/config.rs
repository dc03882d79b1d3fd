//! Registry configuration: where and how often to publish, batch size, timeouts, common tags.

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
    /// Publish endpoint; `None` records but never publishes.
    pub uri: Option<String>,
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
}

impl Default for Config {
    fn default() -> Config {
        Config {
            uri: None,
            frequency: Duration::from_secs(5),
            batch_size: 10_000,
            timeout: Duration::from_secs(1),
            common_tags: Vec::new(),
            meter_ttl: Duration::from_secs(15 * 60),
            max_meters: 100_000,
        }
    }
}
