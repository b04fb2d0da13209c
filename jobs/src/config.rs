//! `persona.toml`: the job's configuration, with defaults for every setting.
//!
//! Every section and key is optional; `persona run` without a config uses the defaults below,
//! which docs/configuration.md documents. Unknown keys are an error, so a typo never silently falls back to
//! a default.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// The look-back window.
    pub window: WindowConfig,
    /// Customer segmentation (K-Means).
    pub segments: SegmentsConfig,
    /// Recommendations (implicit ALS).
    pub recommendations: RecommendationsConfig,
    /// The nightly offline evaluation of the recommendations.
    pub evaluation: EvaluationConfig,
    /// The purchase-propensity model (logistic regression).
    pub propensity: PropensityConfig,
    /// What personal data may be used for.
    pub privacy: PrivacyConfig,
    /// Data-quality gates.
    pub gates: GatesConfig,
    /// Execution settings.
    pub execution: ExecutionConfig,
    /// Object storage (`s3://` roots).
    pub storage: StorageConfig,
    /// How published nights are kept.
    pub output: OutputConfig,
    /// A/B tests whose customers the night assigns to arms (`[[experiments]]`).
    pub experiments: Vec<ExperimentConfig>,
    /// The lists campaigns are sent to (`[[audiences]]`).
    pub audiences: Vec<AudienceConfig>,
}

/// One campaign audience: `[[audiences]]` of persona.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AudienceConfig {
    /// The audience's name, `[a-z0-9_]+`, unique; with the customer id it decides the holdout.
    pub name: String,
    /// Who qualifies: an SQL predicate over the night's customer view `audience_customers`
    /// (docs/contract-and-outputs.md), e.g. `lifecycle = 'dormant' AND loyalty_tier = 'gold'`.
    #[serde(rename = "where")]
    pub predicate: String,
    /// The order of the audience's ranks (and what `limit` keeps), e.g. `probability DESC`;
    /// customer id order when absent. Ties are broken by customer id.
    #[serde(default)]
    pub order_by: Option<String>,
    /// At most this many customers (the first by `order_by`), holdout included.
    #[serde(default)]
    pub limit: Option<u64>,
    /// The share of the audience held out (not contacted), by a hash of (audience, customer
    /// id); none by default. With `experiment`, the experiment's control arm is the holdout.
    #[serde(default)]
    pub holdout_share: Option<f64>,
    /// How the campaign reaches them: `email`, `push`, `ads` or `any` (the default). A `push`
    /// audience never gets an e-mail hash export.
    #[serde(default)]
    pub channel: Channel,
    /// The `[[experiments]]` key whose customers are this audience: its arms split the
    /// audience, its control arm is the holdout, and its analysis measures the campaign.
    #[serde(default)]
    pub experiment: Option<String>,
}

/// The channel of an audience.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// E-mail campaigns.
    Email,
    /// App push messages.
    Push,
    /// Ad platforms' customer lists.
    Ads,
    /// Any channel.
    #[default]
    Any,
}

impl Channel {
    /// The name, as in persona.toml.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Push => "push",
            Channel::Ads => "ads",
            Channel::Any => "any",
        }
    }
}

impl AudienceConfig {
    /// The share held out: the experiment's control arm's weight when it names one.
    pub fn holdout(&self, experiments: &[ExperimentConfig]) -> f64 {
        match &self.experiment {
            Some(key) => experiments
                .iter()
                .find(|e| e.key == *key)
                .and_then(|e| {
                    let total: f64 = e.arms.iter().map(|a| a.weight).sum();
                    e.arms.first().map(|a| a.weight / total)
                })
                .unwrap_or(0.0),
            None => self.holdout_share.unwrap_or(0.0),
        }
    }

    /// The seed of the holdout's hash: the experiment's key (so that the holdout is its control
    /// arm, as its assignment computes it), otherwise `audience_<name>`.
    pub fn holdout_seed(&self) -> String {
        match &self.experiment {
            Some(key) => key.clone(),
            None => format!("audience_{}", self.name),
        }
    }

    /// Checks the name, the numbers and the experiment; the message names the audience.
    fn check(&self, experiments: &[ExperimentConfig]) -> std::result::Result<(), String> {
        let name_ok =
            |s: &str| !s.is_empty() && s.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
        let linked = self
            .experiment
            .as_ref()
            .map(|key| experiments.iter().find(|e| e.key == *key));
        let problem = if !name_ok(&self.name) {
            Some("the name must be [a-z0-9_]+".to_string())
        } else if self.predicate.trim().is_empty() {
            Some("where must be an SQL predicate (\"true\" for everyone)".to_string())
        } else if self.order_by.as_ref().is_some_and(|o| o.trim().is_empty()) {
            Some("order_by, when set, must name what to order by".to_string())
        } else if self.limit == Some(0) {
            Some("limit must be at least 1".to_string())
        } else if self
            .holdout_share
            .is_some_and(|h| !(h.is_finite() && (0.0..1.0).contains(&h)))
        {
            Some("holdout_share must be at least 0 and less than 1".to_string())
        } else if let Some(None) = linked {
            Some(format!(
                "experiment = \"{}\" names no [[experiments]] key",
                self.experiment.as_deref().unwrap_or_default()
            ))
        } else if linked.is_some() && self.holdout_share.is_some() {
            Some(
                "set holdout_share or experiment, not both: the experiment's control arm is \
                 the holdout"
                    .to_string(),
            )
        } else if let Some(Some(e)) = linked
            && e.eligible.trim() != "true"
        {
            Some(format!(
                "experiment '{}' takes its customers from this audience: leave its eligible \
                 out and put the condition in the audience's where",
                e.key
            ))
        } else {
            None
        };
        match problem {
            Some(p) => Err(format!("audiences: audience '{}': {p}", self.name)),
            None => Ok(()),
        }
    }
}

impl PipelineConfig {
    /// The audience whose customers experiment `key` takes, if one names it.
    pub fn audience_of_experiment(&self, key: &str) -> Option<&AudienceConfig> {
        self.audiences
            .iter()
            .find(|a| a.experiment.as_deref() == Some(key))
    }
}

/// One A/B test: `[[experiments]]` of persona.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The experiment's name, `[a-z0-9_]+`, unique; with the customer id it decides the arm.
    pub key: String,
    /// The arms, the control first.
    pub arms: Vec<ArmConfig>,
    /// Which customers take part: an SQL predicate over `user_profiles` (and `probability`,
    /// `decile` when the propensity model runs), e.g. `segment_id = 3 AND marketing_opt_in`.
    #[serde(default = "everyone")]
    pub eligible: String,
    /// The first night that assigns customers (YYYY-MM-DD).
    pub start: String,
    /// The last night that assigns new customers, if any (assigned customers stay).
    #[serde(default)]
    pub end: Option<String>,
    /// What the analysis compares (`experiment_results`): any of [`METRICS`]; all by default.
    #[serde(default = "all_metrics")]
    pub metrics: Vec<String>,
    /// How an arm's p-values are adjusted across the metrics: `"holm"` (the default),
    /// `"benjamini_hochberg"` or `"none"`.
    #[serde(default = "holm")]
    pub correction: String,
    /// Winsorisation: each customer's revenue, orders and sessions are capped at this
    /// percentile of the experiment's customers (e.g. 0.99), before and after entry alike;
    /// none by default.
    #[serde(default)]
    pub winsorize: Option<f64>,
}

/// The metrics an experiment can be analysed on, in the order of `experiment_results`:
/// whether the customer purchased since entry, revenue, orders, average order value (a ratio
/// of two sums) and sessions.
pub const METRICS: [&str; 5] = ["conversion", "revenue", "orders", "aov", "sessions"];

/// The multiple-comparison corrections of `correction`.
pub const CORRECTIONS: [&str; 3] = ["holm", "benjamini_hochberg", "none"];

fn everyone() -> String {
    "true".to_string()
}

fn all_metrics() -> Vec<String> {
    METRICS.iter().map(|m| m.to_string()).collect()
}

fn holm() -> String {
    "holm".to_string()
}

/// One arm of an experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArmConfig {
    /// The arm's name, `[a-z0-9_]+`.
    pub name: String,
    /// Its share of new customers; an experiment's weights sum to 1.
    pub weight: f64,
}

impl ExperimentConfig {
    /// The start date.
    pub fn start_date(&self) -> Option<chrono::NaiveDate> {
        chrono::NaiveDate::parse_from_str(&self.start, "%Y-%m-%d").ok()
    }

    /// The end date, when there is one (`Some(None)` for a valid absent end).
    pub fn end_date(&self) -> Option<Option<chrono::NaiveDate>> {
        match &self.end {
            None => Some(None),
            Some(end) => chrono::NaiveDate::parse_from_str(end, "%Y-%m-%d")
                .ok()
                .map(Some),
        }
    }

    /// Whether the night of `date` takes new customers in (from `start` to `end`).
    pub fn open_on(&self, date: chrono::NaiveDate) -> bool {
        self.start_date().is_some_and(|s| s <= date)
            && self.end_date().flatten().is_none_or(|end| date <= end)
    }

    /// Checks names, weights and dates; the message names the experiment.
    fn check(&self) -> std::result::Result<(), String> {
        let name_ok =
            |s: &str| !s.is_empty() && s.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
        let key = &self.key;
        let problem = if !name_ok(key) {
            Some("the key must be [a-z0-9_]+".to_string())
        } else if self.arms.len() < 2 {
            Some("it needs at least two arms (the control first)".to_string())
        } else if let Some(arm) = self.arms.iter().find(|a| !name_ok(&a.name)) {
            Some(format!("arm name '{}' must be [a-z0-9_]+", arm.name))
        } else if let Some(arm) = self
            .arms
            .iter()
            .find(|a| !(a.weight.is_finite() && a.weight > 0.0))
        {
            Some(format!("arm '{}' needs a weight > 0", arm.name))
        } else if (1..self.arms.len())
            .any(|i| self.arms[..i].iter().any(|a| a.name == self.arms[i].name))
        {
            Some("arm names must be unique".to_string())
        } else if (self.arms.iter().map(|a| a.weight).sum::<f64>() - 1.0).abs() > 1e-6 {
            Some(format!(
                "the arms' weights sum to {}, not 1",
                self.arms.iter().map(|a| a.weight).sum::<f64>()
            ))
        } else if let Some(m) = self.metrics.iter().find(|m| !METRICS.contains(&m.as_str())) {
            Some(format!(
                "unknown metric '{m}' (known: {})",
                METRICS.join(", ")
            ))
        } else if self.metrics.is_empty() {
            Some("metrics must name at least one metric".to_string())
        } else if !CORRECTIONS.contains(&self.correction.as_str()) {
            Some(format!(
                "correction = \"{}\" is not one of {}",
                self.correction,
                CORRECTIONS.join(", ")
            ))
        } else if self
            .winsorize
            .is_some_and(|p| !(p.is_finite() && p > 0.5 && p < 1.0))
        {
            Some("winsorize is a percentile between 0.5 and 1 (e.g. 0.99)".to_string())
        } else if self.start_date().is_none() {
            Some(format!(
                "start = \"{}\" is not a date (YYYY-MM-DD)",
                self.start
            ))
        } else if self.end_date().is_none() {
            Some("end is not a date (YYYY-MM-DD)".to_string())
        } else if matches!((self.start_date(), self.end_date()), (Some(s), Some(Some(e))) if e < s)
        {
            Some("end is before start".to_string())
        } else if self.eligible.trim().is_empty() {
            Some("eligible must be an SQL predicate (\"true\" for everyone)".to_string())
        } else {
            None
        };
        match problem {
            Some(p) => Err(format!("experiments: experiment '{key}': {p}")),
            None => Ok(()),
        }
    }
}

/// How published nights are kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// When a rerun replaces a date's night, the replaced run's folders stay readable for this
    /// many hours, so that a reader that resolved the old manifest (`persona sql`, a Spark or
    /// DuckDB job) finishes reading a whole night; a later run of the date removes them. 0:
    /// removed at once, after the commit.
    pub keep_replaced_hours: f64,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            keep_replaced_hours: 6.0,
        }
    }
}

impl OutputConfig {
    /// [`Self::keep_replaced_hours`] as a duration.
    pub fn keep_replaced(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.keep_replaced_hours.max(0.0) * 3600.0)
    }
}

/// Which events a run looks at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// Days of events up to and including `--date`.
    pub lookback_days: u32,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self { lookback_days: 28 }
    }
}

/// K-Means settings: `[segments]` of persona.toml, and the flags of `persona kmeans`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentsConfig {
    /// Number of segments, or `"auto"`: try `k_min..=k_max` and keep the best silhouette.
    pub k: KChoice,
    /// Smallest k tried by `k = "auto"`.
    pub k_min: usize,
    /// Largest k tried by `k = "auto"`.
    pub k_max: usize,
    /// Points sampled to score each candidate k by silhouette.
    pub silhouette_sample: usize,
    /// Points sampled to measure the segments' stability (fits on two halves of them); 0 turns
    /// the measure off.
    pub stability_sample: usize,
    /// A night whose segments' stability (adjusted Rand index between the two halves' fits) is
    /// below this is flagged in the manifest, the summary and the log (not failed).
    pub min_stability: f64,
    /// Maximum Lloyd iterations.
    pub max_iter: usize,
    /// Stop when no centroid moves more than this (in standard deviations).
    pub tol: f64,
    /// Seed of the initialisation.
    pub seed: u64,
    /// Columns of `user_features` to cluster on (numeric).
    pub features: Vec<String>,
    /// Features transformed with `ln(1 + x)` before standardising (heavy-tailed money/counts).
    pub log_features: Vec<String>,
    /// Categorical columns of `user_features` (e.g. `loyalty_tier`) clustered on as one-hot
    /// indicators, one per frequent value, standardised like the numeric features.
    pub categorical_features: Vec<String>,
    /// Features in named groups, each group weighing `weight` in the distance however many
    /// columns it has (block weighting: each standardised column of a group of `n` columns is
    /// multiplied by `weight / sqrt(n)`), so that 24 interest shares do not outvote three CRM
    /// columns. When set, the groups name every feature clustered on, in the order of the
    /// groups' names, and `features` / `categorical_features` are left unset.
    pub feature_groups: BTreeMap<String, FeatureGroup>,
    /// Standardise every feature to z-scores (mean 0, standard deviation 1) before clustering.
    pub standardize: bool,
    /// Initialisation.
    pub init: Init,
    /// Sampling rounds of k-means‖ (Spark's `initSteps`).
    pub init_steps: usize,
    /// Points sampled for the k-means++ initialisation.
    pub init_sample: usize,
    /// Independent restarts (seeds `seed`, `seed + 1`, …); the lowest inertia wins.
    pub n_init: usize,
    /// Distance between customers.
    pub distance: Distance,
    /// Optional numeric column weighing each row (sums, counts and inertia are weighted).
    pub weight_column: Option<String>,
    /// Largest distance (in standard deviations) between a segment's centroid and the previous
    /// night's for it to keep that night's id; further, it is a new segment with a new id.
    pub max_drift: f64,
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        let log_features = [
            "sessions",
            "active_days",
            "purchases",
            "monetary",
            "avg_order_value",
            "web_views",
            "app_views",
        ];
        Self {
            k: KChoice::Fixed(6),
            k_min: 2,
            k_max: 10,
            silhouette_sample: 2_000,
            stability_sample: 20_000,
            min_stability: 0.6,
            max_iter: 40,
            tol: 1e-4,
            seed: 42,
            // The default clusters on feature groups; `features` replaces them when set.
            features: Vec::new(),
            log_features: log_features.iter().map(|s| s.to_string()).collect(),
            categorical_features: Vec::new(),
            feature_groups: default_feature_groups(),
            standardize: true,
            // Eight k-means++ starts: at medium scale one k-means|| start lands in a poor local
            // optimum (ARI 0.51 against the hidden types), four in a better one (0.672), eight
            // in the best found by 16 (inertia 0.8% lower, ARI 0.682), for about a second of
            // K-Means in all (docs/benchmarks.md).
            init: Init::KMeansPlusPlus,
            init_steps: 2,
            init_sample: 20_000,
            n_init: 8,
            distance: Distance::Euclidean,
            weight_column: None,
            max_drift: 1.0,
        }
    }
}

/// The default features: every group of `user_features` in, each weighing the same. Chosen on
/// a family of generated shops whose hidden customer types differ in one group each
/// (`persona generate --types-by`, `scripts/bench-segments.sh`): the previous default (14
/// behaviour and CRM columns) was best on the shop it was tuned on (ARI 0.677 against 0.555
/// here) and found nothing where types differ in taste (0.000 against 0.767) or channel
/// (0.178 against 0.540); these groups are never far from the best set of each member, and at
/// least scikit-learn's pipeline on every column (docs/benchmarks.md).
fn default_feature_groups() -> BTreeMap<String, FeatureGroup> {
    let group = |features: &[&str], categorical: &[&str]| FeatureGroup {
        features: features.iter().map(|s| s.to_string()).collect(),
        categorical: categorical.iter().map(|s| s.to_string()).collect(),
        weight: 1.0,
    };
    BTreeMap::from([
        (
            "behaviour".to_string(),
            group(
                &[
                    "recency_days",
                    "sessions",
                    "active_days",
                    "purchases",
                    "monetary",
                    "avg_order_value",
                    "conversion_rate",
                    "categories_seen",
                    "top_category_share",
                ],
                &[],
            ),
        ),
        (
            "channel".to_string(),
            group(
                &[
                    "web_views",
                    "app_views",
                    "share_ios",
                    "share_android",
                    "share_web",
                    "share_night",
                    "share_morning",
                    "share_afternoon",
                    "share_evening",
                    "share_weekend",
                ],
                &[],
            ),
        ),
        (
            "taste".to_string(),
            group(&["interest_*", "price_index"], &[]),
        ),
        (
            "crm".to_string(),
            group(
                &["age", "tenure_days", "annual_income"],
                &["loyalty_tier", "gender", "country"],
            ),
        ),
    ])
}

/// One group of `[segments] feature_groups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureGroup {
    /// Numeric columns of `user_features` (patterns such as `interest_*` allowed).
    #[serde(default)]
    pub features: Vec<String>,
    /// Categorical columns, one-hot encoded.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// The group's total weight in the distance (1 for every group: each weighs the same).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// A block of features of one fit, with its group and the group's weight when
/// `feature_groups` names them.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureBlock {
    /// `(group name, weight)`, or `None` for the plain `features` / `categorical_features`.
    pub group: Option<(String, f64)>,
    /// Numeric columns or patterns.
    pub features: Vec<String>,
    /// Categorical columns.
    pub categorical: Vec<String>,
}

impl SegmentsConfig {
    /// The features clustered on, block by block: one block per named group, or one unnamed
    /// block of `features` and `categorical_features`.
    pub fn blocks(&self) -> Vec<FeatureBlock> {
        if self.feature_groups.is_empty() {
            return vec![FeatureBlock {
                group: None,
                features: self.features.clone(),
                categorical: self.categorical_features.clone(),
            }];
        }
        self.feature_groups
            .iter()
            .map(|(name, g)| FeatureBlock {
                group: Some((name.clone(), g.weight)),
                features: g.features.clone(),
                categorical: g.categorical.clone(),
            })
            .collect()
    }
}

/// How many segments: a number, or `auto` (chosen by silhouette).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KValue", into = "KValue")]
pub enum KChoice {
    /// Exactly this many.
    Fixed(usize),
    /// Try `k_min..=k_max`.
    Auto,
}

/// The TOML spelling of [`KChoice`]: an integer or the string "auto".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum KValue {
    Number(usize),
    Word(String),
}

impl TryFrom<KValue> for KChoice {
    type Error = String;
    fn try_from(v: KValue) -> std::result::Result<Self, String> {
        match v {
            KValue::Number(k) => Ok(KChoice::Fixed(k)),
            KValue::Word(w) => w.parse(),
        }
    }
}

impl From<KChoice> for KValue {
    fn from(k: KChoice) -> Self {
        match k {
            KChoice::Fixed(k) => KValue::Number(k),
            KChoice::Auto => KValue::Word("auto".into()),
        }
    }
}

impl std::str::FromStr for KChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "auto" {
            return Ok(KChoice::Auto);
        }
        s.parse()
            .map(KChoice::Fixed)
            .map_err(|_| format!("k must be a whole number or \"auto\", not \"{s}\""))
    }
}

/// K-Means initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Init {
    /// k-means‖ (Bahmani et al.; Spark's default): a few distributed sampling rounds, then
    /// weighted k-means++ on the sampled candidates.
    #[serde(rename = "k-means||")]
    #[value(name = "k-means||")]
    KMeansParallel,
    /// Greedy k-means++ (scikit-learn's default) on a reproducible sample of `init_sample` points.
    #[serde(rename = "k-means++")]
    #[value(name = "k-means++")]
    KMeansPlusPlus,
}

/// K-Means distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Distance {
    /// Squared Euclidean distance (standard Lloyd).
    Euclidean,
    /// Cosine distance (1 − cos): points and centroids are scaled to unit length (spherical
    /// k-means), so only the direction of the feature vector counts.
    Cosine,
}

/// Which items never to recommend to a customer.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Exclude {
    /// Items the customer bought in the window.
    Purchased,
    /// Every item the customer interacted with.
    Seen,
    /// Nothing.
    None,
}

/// Interaction weight per event type.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EventWeights {
    /// Product view.
    pub view: f64,
    /// Click on an item.
    pub click: f64,
    /// Add to cart.
    pub add_to_cart: f64,
    /// Purchase.
    pub purchase: f64,
}

impl EventWeights {
    /// The interaction event types, each with its weight: the one list of the event types that
    /// make a customer–item interaction (the SQL stages get it as `{{interaction_events}}`, and
    /// the weights as the `{{event_weight}}` expression).
    pub fn by_event_type(&self) -> [(&'static str, f64); 4] {
        [
            ("view", self.view),
            ("click", self.click),
            ("add_to_cart", self.add_to_cart),
            ("purchase", self.purchase),
        ]
    }
}

impl Default for EventWeights {
    fn default() -> Self {
        Self {
            view: 1.0,
            click: 1.0,
            add_to_cart: 3.0,
            purchase: 5.0,
        }
    }
}

/// ALS settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecommendationsConfig {
    /// Latent factors.
    pub rank: usize,
    /// ALS iterations (each solves users, then items).
    pub iterations: usize,
    /// When the nightly evaluation runs, it fits ALS on all but the holdout days first; the
    /// published model then continues from that fit's item factors for this many iterations
    /// on the whole window instead of fitting again from random factors (one fit serves
    /// both). 0: always fit from scratch, as with the evaluation off.
    pub warm_start_iterations: usize,
    /// Regularisation λ.
    pub lambda: f64,
    /// Confidence scale: c = 1 + alpha·weight.
    pub alpha: f64,
    /// Scale λ by each row's interaction count (ALS-WR, as Spark does).
    pub weighted_lambda: bool,
    /// How each customer's and item's equations are solved: `"cg"` (conjugate gradient,
    /// warm-started; fast) or `"cholesky"` (exact; for comparison and small ranks).
    pub solver: AlsSolver,
    /// Conjugate-gradient steps per solve.
    pub cg_steps: usize,
    /// How the customer factors meet the interactions in the item half of an iteration:
    /// `"plan"` (kept by the driver and shipped inside the plan: fastest, one process),
    /// `"tables"` (a work table joined with the interactions: nothing customer-sized on the
    /// client, for Ballista), or `"auto"` (`plan` locally, `tables` on Ballista). The factors
    /// are the same bits either way.
    pub factor_exchange: FactorExchange,
    /// Seed of the factor initialisation.
    pub seed: u64,
    /// Recommendations per customer.
    pub top_n: usize,
    /// Customers with fewer items than this in the window get their segment's most popular
    /// items instead of the model's (cold start). 1 by default: measured against the hidden
    /// next week, the model's scores beat the segment's favourites even for customers with one
    /// or two items (docs/benchmarks.md).
    pub min_interactions: usize,
    /// Items never recommended to a customer.
    pub exclude: Exclude,
    /// Event weights.
    pub weights: EventWeights,
    /// Cap on one (customer, item) weight.
    pub max_weight: f64,
    /// Explicit ratings instead of implicit feedback (`persona als --explicit` only: the
    /// nightly interactions are implicit).
    #[serde(skip)]
    pub explicit: bool,
    /// Time decay: an event's weight halves for every this many days of age at the end of the
    /// window (0: no decay).
    pub half_life_days: f64,
    /// The item-to-item neighbourhood model (`[recommendations.item_knn]`).
    pub item_knn: ItemKnnConfig,
    /// The customer-to-customer neighbourhood model (`[recommendations.user_knn]`).
    pub user_knn: UserKnnConfig,
    /// Which model's top-N the night publishes in `recommendations`: `"als"` (the default),
    /// `"item_knn"`, `"user_knn"` (each turns its model on), or `"auto"`: the model with the best
    /// NDCG@k in tonight's evaluation among ALS and the neighbourhood models enabled.
    pub model: RecommendationModel,
}

impl RecommendationsConfig {
    /// Whether the night computes the item-to-item model (enabled, or the published model).
    pub fn item_knn_on(&self) -> bool {
        self.item_knn.enabled || self.model == RecommendationModel::ItemKnn
    }

    /// Whether the night computes the customer-to-customer model (enabled, or the published
    /// model).
    pub fn user_knn_on(&self) -> bool {
        self.user_knn.enabled || self.model == RecommendationModel::UserKnn
    }
}

/// Which model's recommendations are published ([`RecommendationsConfig::model`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecommendationModel {
    /// Implicit ALS.
    #[default]
    Als,
    /// The item-to-item neighbourhood model.
    ItemKnn,
    /// The customer-to-customer neighbourhood model.
    UserKnn,
    /// The best of the enabled models by NDCG@k in tonight's evaluation.
    Auto,
}

impl RecommendationModel {
    /// Its name in the configuration, the evaluation and the `source` column.
    pub fn name(self) -> &'static str {
        match self {
            Self::Als => "als",
            Self::ItemKnn => "item_knn",
            Self::UserKnn => "user_knn",
            Self::Auto => "auto",
        }
    }
}

/// The customer-to-customer model: each customer's most similar customers by the Pearson
/// correlation of their interaction weights (every item a column, as scikit-learn's
/// `NearestNeighbors(metric="correlation")` compares them), found without comparing every pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UserKnnConfig {
    /// Whether the night computes the model: publishes `similar_customers` and scores `user_knn`
    /// in the evaluation. Off by default (docs/benchmarks.md gives its cost).
    pub enabled: bool,
    /// Similar customers kept per customer.
    pub neighbours: usize,
    /// Candidate pairs come from customers who share an item; an item's customers are cut
    /// into blocks of this many (by a hash) and only customers in the same block are paired,
    /// so that a popular item costs its customers x this, not its customers squared.
    pub block: usize,
    /// Candidates per customer whose exact similarity is computed (the best by the blocks'
    /// estimate).
    pub candidates: usize,
    /// How the neighbours' interactions become a score: `"weighted_sum"` (Σ similarity ×
    /// weight: the default, best on implicit feedback) or `"mean_centred"` (r̄_u + Σ sim (r_vi −
    /// r̄_v) / Σ |sim|, the textbook formula for ratings).
    pub prediction: UserKnnPrediction,
}

impl Default for UserKnnConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            neighbours: 50,
            block: 25,
            candidates: 400,
            prediction: UserKnnPrediction::WeightedSum,
        }
    }
}

/// How the customer-to-customer model scores an item ([`UserKnnConfig::prediction`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UserKnnPrediction {
    /// Σ over the neighbours who have the item of similarity × their weight for it.
    #[default]
    WeightedSum,
    /// The customer's mean weight plus the neighbours' similarity-weighted deviations from
    /// their own means, over the sum of the similarities' magnitudes.
    MeanCentred,
}

impl UserKnnPrediction {
    /// The name the SQL takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::WeightedSum => "weighted_sum",
            Self::MeanCentred => "mean_centred",
        }
    }
}

/// The item-to-item model: each item's most similar items by co-interaction, as `implicit`'s
/// `CosineRecommender` and `BM25Recommender` compute them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ItemKnnConfig {
    /// Whether the night computes the model: publishes `item_neighbours` and scores `item_knn`
    /// in the evaluation. Off by default: its SQL is 7–10× slower than `implicit`, and on the
    /// medium data it would add about 4 minutes to a 34-second night (docs/benchmarks.md).
    pub enabled: bool,
    /// `"bm25"` (the default: customers who touch many items count less) or `"cosine"`.
    pub similarity: KnnSimilarity,
    /// Neighbours kept per item.
    pub neighbours: usize,
    /// BM25's K1: how fast a customer's weight for an item saturates.
    pub bm25_k1: f64,
    /// BM25's B: how much an item's total weight normalises its column (0 to 1).
    pub bm25_b: f64,
}

impl Default for ItemKnnConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            similarity: KnnSimilarity::Bm25,
            neighbours: 50,
            bm25_k1: 1.2,
            bm25_b: 0.75,
        }
    }
}

/// How two items' similarity is measured.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KnnSimilarity {
    /// BM25-weighted dot product.
    #[default]
    Bm25,
    /// Cosine of the weight columns.
    Cosine,
}

impl KnnSimilarity {
    /// The name the SQL takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bm25 => "bm25",
            Self::Cosine => "cosine",
        }
    }
}

impl Default for RecommendationsConfig {
    fn default() -> Self {
        Self {
            rank: 32,
            iterations: 10,
            warm_start_iterations: 1,
            lambda: 0.1,
            alpha: 10.0,
            weighted_lambda: false,
            solver: AlsSolver::Cg,
            cg_steps: 3,
            factor_exchange: FactorExchange::Auto,
            seed: 7,
            top_n: 10,
            min_interactions: 1,
            exclude: Exclude::Purchased,
            weights: EventWeights::default(),
            max_weight: 50.0,
            half_life_days: 0.0,
            explicit: false,
            item_knn: ItemKnnConfig::default(),
            user_knn: UserKnnConfig::default(),
            model: RecommendationModel::Als,
        }
    }
}

/// ALS solver.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AlsSolver {
    /// Conjugate gradient, `cg_steps` steps warm-started from the previous factors.
    #[default]
    Cg,
    /// Exact Cholesky solve.
    Cholesky,
}

/// How the ALS fit exchanges the customer factors ([`RecommendationsConfig::factor_exchange`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FactorExchange {
    /// `plan` in one process, `tables` on a Ballista cluster.
    #[default]
    Auto,
    /// The driver keeps the customer factors and ships them in the plan.
    Plan,
    /// The customer factors stay in a work table on the shared storage.
    Tables,
}

/// `[gates]` of persona.toml: when the inputs look too wrong to publish from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GatesConfig {
    /// Run the gates at all.
    pub enabled: bool,
    /// Fail when a source has no raw row in the window.
    pub required_sources: Vec<String>,
    /// Per reason that signals broken data, the largest share of a source's raw rows it may
    /// take. Exclusions of normal traffic (crawlers, anonymous visitors, error pages, rows of
    /// other days) are counted in `data_quality` but never gated.
    pub max_share: BrokenDataLimits,
    /// Fail when the run date's kept rows of a source are below this share of the median of
    /// the `volume_history_days` days before (0: off; not checked with fewer than 3 such days).
    pub min_volume_ratio: f64,
    /// Days before the run date that the volume gate compares with.
    pub volume_history_days: u32,
}

impl Default for GatesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            required_sources: vec!["web_logs".into(), "app_events".into()],
            max_share: BrokenDataLimits::default(),
            min_volume_ratio: 0.5,
            volume_history_days: 7,
        }
    }
}

/// `[gates.max_share]`: one limit per drop reason that signals broken data, as a share of a
/// source's raw rows (1 turns a reason's gate off).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BrokenDataLimits {
    /// Rows without a time, a customer (app) or a URL (web), or with an unknown event type or a
    /// negative price or quantity: a broken export.
    pub invalid_value: f64,
    /// Rows of customers missing from the CRM export (they are still profiled, as
    /// `in_crm = false`): a stale or truncated CRM export.
    pub unknown_customer: f64,
    /// Extra copies of a row: at-least-once delivery gone wrong.
    pub duplicate: f64,
    /// Rows stamped after the run date: a wrong clock or a wrong `--date`.
    pub future_dated: f64,
}

impl Default for BrokenDataLimits {
    fn default() -> Self {
        Self {
            invalid_value: 0.05,
            unknown_customer: 0.1,
            duplicate: 0.1,
            future_dated: 0.02,
        }
    }
}

impl BrokenDataLimits {
    /// Each gated reason, as `event_drops` names it, with its limit.
    pub fn by_reason(&self) -> [(&'static str, f64); 4] {
        [
            ("invalid_value", self.invalid_value),
            ("unknown_customer", self.unknown_customer),
            ("duplicate", self.duplicate),
            ("future_dated", self.future_dated),
        ]
    }
}

/// `[privacy]` of persona.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Publish recommendations for customers who did not agree to marketing
    /// (`marketing_opt_in` false or unknown) too. Off by default: they get none.
    pub recommend_without_opt_in: bool,
    /// Publish a purchase probability for customers who did not agree to marketing too. On by
    /// default: a probability is analysis (how many may buy), not a message to anyone; set it
    /// to false when your policy counts scoring as profiling that needs consent.
    pub score_without_opt_in: bool,
    /// Write each audience's normalised e-mail addresses (trimmed, lower case) as SHA-256 hex
    /// beside its customer ids in `exports/`, the format ad platforms' customer-list uploads
    /// take. Off by default: no e-mail, hashed or not, leaves Persona.
    pub export_hashed_emails: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            recommend_without_opt_in: false,
            score_without_opt_in: true,
            export_hashed_emails: false,
        }
    }
}

/// The purchase-propensity model: `[propensity]` of persona.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PropensityConfig {
    /// Run it as part of `persona run`.
    pub enabled: bool,
    /// The model estimates the probability of a purchase in the next `horizon_days`; it is
    /// trained on the window's last `horizon_days` as the label and the days before as the
    /// features, so the features of both snapshots cover `lookback_days − horizon_days` days.
    pub horizon_days: u32,
    /// L2 penalty λ on the standardised coefficients (the intercept is not penalised):
    /// scikit-learn's `C` is `1 / l2`.
    pub l2: f64,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Stop when no coefficient moves more than this in a Newton step.
    pub tol: f64,
    /// `"balanced"` weighs each class by `n / (2 · n_class)`; `"none"` weighs every row 1.
    pub class_weight: ClassWeight,
    /// Numeric columns of `propensity_snapshots` the model uses.
    pub features: Vec<String>,
    /// Features transformed with `ln(1 + x)` before standardising.
    pub log_features: Vec<String>,
    /// Categorical columns used one-hot (one indicator per frequent value).
    pub categorical_features: Vec<String>,
}

/// Class weights of the propensity fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every row weighs 1.
    None,
    /// Each class weighs `n / (2 · n_class)` in all, as scikit-learn's `"balanced"`.
    Balanced,
}

impl Default for PropensityConfig {
    fn default() -> Self {
        let features = [
            "recency_days",
            "days_since_purchase",
            "events",
            "sessions",
            "active_days",
            "views",
            "cart_adds",
            "purchases",
            "searches",
            "monetary",
            "events_7d",
            "views_7d",
            "cart_adds_7d",
            "purchases_7d",
            "conversion_rate",
            "avg_order_value",
            "share_app",
            "age",
            "tenure_days",
            "annual_income",
            "marketing_opt_in",
        ];
        let log_features = [
            "events",
            "sessions",
            "active_days",
            "views",
            "cart_adds",
            "purchases",
            "searches",
            "monetary",
            "events_7d",
            "views_7d",
            "cart_adds_7d",
            "purchases_7d",
            "avg_order_value",
            "annual_income",
        ];
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Self {
            enabled: true,
            horizon_days: 7,
            l2: 1.0,
            max_iter: 25,
            tol: 1e-6,
            class_weight: ClassWeight::None,
            features: strings(&features),
            log_features: strings(&log_features),
            categorical_features: strings(&["loyalty_tier", "gender", "country"]),
        }
    }
}

/// The nightly offline evaluation: `[evaluation]` of persona.toml.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Run it as a stage of `persona run` (its fit on all but the holdout days is also the start
    /// of the published fit: `[recommendations] warm_start_iterations`).
    pub enabled: bool,
    /// The last days of the window held out: the models train on the days before and are
    /// scored on what customers did in these.
    pub holdout_days: u32,
    /// Cut-off of the metrics (precision@k, recall@k, NDCG@k, MAP@k).
    pub k: usize,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            holdout_days: 7,
            k: 10,
        }
    }
}

/// How queries run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutionConfig {
    /// Partitions per query (0 = one per core).
    pub target_partitions: usize,
    /// Memory for the queries' aggregations, sorts and joins in one process, in GiB, shared
    /// fairly between them: an aggregation that would grow past its share spills sorted runs
    /// to the temporary folder instead (0: no limit). Measured at the large scale: the staging
    /// dedup alone held 14 GB without it. The night's own state (factors, centroids) and the
    /// Parquet readers' buffers come on top.
    pub memory_limit_gb: f64,
    /// Fail the run (exit 8, nothing published) when one stage runs longer than this many
    /// seconds. Unset: no limit locally, 3600 on Ballista, where a job that lost an executor
    /// can wait forever. 0: no limit.
    pub stage_timeout_seconds: Option<u64>,
    /// Memory for the night's intermediate tables (`events`, the evaluation's splits, the
    /// indices...), in GiB, all of them together, in one process: a table is kept in memory
    /// while it fits and the memory pool grants it, else written as Parquet in the work area,
    /// and let go after the last stage that reads it. A night whose Parquet input is more
    /// than a sixth of this keeps none in memory (its tables would not fit, and the smaller
    /// ones would hold memory its joins need). 0: always Parquet (as on Ballista, whose
    /// executors read files). Measured in docs/benchmarks.md, "Work tables".
    pub work_tables_memory_gb: f64,
    /// DataFusion's own settings for every query of the run, by their full names, e.g.
    /// `"datafusion.execution.batch_size" = 16384` (the list: DataFusion's configuration
    /// reference, or `persona sql "SHOW ALL"`). Applied after Persona's own, locally and on
    /// Ballista; an unknown name or a value of the wrong kind is a configuration error.
    pub datafusion: BTreeMap<String, OptionValue>,
}

/// A DataFusion setting's value as TOML spells it; DataFusion parses the text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OptionValue {
    /// `true` or `false`.
    Flag(bool),
    /// A whole number, e.g. a batch size.
    Integer(i64),
    /// A number with a fraction.
    Number(f64),
    /// Anything else, as DataFusion spells it.
    Text(String),
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Flag(b) => write!(f, "{b}"),
            OptionValue::Integer(i) => write!(f, "{i}"),
            OptionValue::Number(x) => write!(f, "{x}"),
            OptionValue::Text(t) => f.write_str(t),
        }
    }
}

impl Default for ExecutionConfig {
    fn default() -> Self {
        Self {
            target_partitions: 0,
            memory_limit_gb: 6.0,
            stage_timeout_seconds: None,
            work_tables_memory_gb: 3.0,
            datafusion: BTreeMap::new(),
        }
    }
}

impl ExecutionConfig {
    /// Sets the `[execution.datafusion]` settings on `config`; the error names the setting
    /// (`"<name>" = <value>: <DataFusion's reason>`). Checked when the configuration is loaded,
    /// applied to every session.
    pub fn apply_datafusion(
        &self,
        config: &mut datafusion::prelude::SessionConfig,
    ) -> std::result::Result<(), String> {
        for (key, value) in &self.datafusion {
            config
                .options_mut()
                .set(key, &value.to_string())
                // The innermost cause, on one line (DataFusion wraps it in a context).
                .map_err(|e| format!("\"{key}\" = {value}: {}", e.find_root()))?;
        }
        Ok(())
    }

    /// The memory for work tables in bytes (0: none).
    pub fn work_tables_bytes(&self) -> usize {
        (self.work_tables_memory_gb.max(0.0) * (1u64 << 30) as f64) as usize
    }

    /// The memory limit in bytes, `None` for no limit.
    pub fn memory_limit_bytes(&self) -> Option<usize> {
        (self.memory_limit_gb > 0.0)
            .then_some((self.memory_limit_gb * (1u64 << 30) as f64) as usize)
    }
}

/// How `s3://` roots are reached. Every key falls back to the standard AWS environment variables
/// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); a key set here wins over the environment.
/// Credentials are never serialised (the manifest embeds the configuration) nor printed.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// S3 endpoint, e.g. `http://127.0.0.1:9000` for MinIO (default: AWS).
    pub endpoint: Option<String>,
    /// Region (MinIO accepts any; default `us-east-1`).
    pub region: Option<String>,
    /// Allow plain `http://` endpoints (local MinIO).
    pub allow_http: Option<bool>,
    /// Bucket-in-hostname addressing (AWS style). Off by default: path-style, as MinIO needs.
    pub virtual_hosted_style: bool,
    /// Access key (prefer `AWS_ACCESS_KEY_ID`).
    #[serde(skip_serializing)]
    pub access_key_id: Option<String>,
    /// Secret key (prefer `AWS_SECRET_ACCESS_KEY`).
    #[serde(skip_serializing)]
    pub secret_access_key: Option<String>,
    /// Retries of a transient failure (5xx, timeouts, refused connections), with exponential
    /// backoff.
    pub max_retries: usize,
    /// Give up retrying one request after this many seconds.
    pub retry_timeout_secs: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            allow_http: None,
            virtual_hosted_style: false,
            access_key_id: None,
            secret_access_key: None,
            max_retries: 4,
            retry_timeout_secs: 30,
        }
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "<hidden>");
        f.debug_struct("StorageConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("virtual_hosted_style", &self.virtual_hosted_style)
            .field("access_key_id", &hidden(&self.access_key_id))
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("max_retries", &self.max_retries)
            .field("retry_timeout_secs", &self.retry_timeout_secs)
            .finish()
    }
}

/// How a message names a setting: as a key of `persona.toml` (`segments.k_min`) or as the
/// command-line flag that sets it (`--k-min`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingNames {
    /// `section.key`.
    Toml,
    /// `--key-with-dashes`.
    Flags,
}

impl SettingNames {
    /// The name of the setting `section.key`.
    pub fn name(self, key: &str) -> String {
        match self {
            SettingNames::Toml => key.to_string(),
            SettingNames::Flags => {
                let bare = key.rsplit('.').next().unwrap_or(key);
                format!("--{}", bare.replace('_', "-"))
            }
        }
    }
}

impl PipelineConfig {
    /// Reads `path`, or the defaults when `None`.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            PipelineError::Config(format!("cannot read config {}: {e}", path.display()))
        })?;
        Self::parse(&text).map_err(|e| PipelineError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML text and validates it.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut cfg: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        // `[segments] features` (or `categorical_features`) replaces the default groups; naming
        // both features and groups is refused.
        let raw: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        if let Some(segments) = raw.get("segments").and_then(toml::Value::as_table) {
            let features =
                segments.contains_key("features") || segments.contains_key("categorical_features");
            if features && segments.contains_key("feature_groups") {
                return Err("set segments.features (and categorical_features) or \
                    segments.feature_groups, not both: the groups name every feature clustered on"
                    .into());
            }
            if features {
                cfg.segments.feature_groups.clear();
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges that serde cannot; messages name settings as in `persona.toml`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.validate_named(SettingNames::Toml)
    }

    /// Checks ranges that serde cannot; messages name settings as `names` says (the command
    /// line's flags for `persona kmeans` and `persona als`).
    pub fn validate_named(&self, names: SettingNames) -> std::result::Result<(), String> {
        let n = |key: &str| names.name(key);
        let checks = [
            (
                self.window.lookback_days >= 1,
                format!("{} must be at least 1", n("window.lookback_days")),
            ),
            (
                !matches!(self.segments.k, KChoice::Fixed(k) if k < 2),
                format!("{} must be at least 2 (or \"auto\")", n("segments.k")),
            ),
            (
                self.segments.k_min >= 2 && self.segments.k_min <= self.segments.k_max,
                format!(
                    "{} must be at least 2 and at most {}",
                    n("segments.k_min"),
                    n("segments.k_max")
                ),
            ),
            (
                self.segments.tol >= 0.0 && self.segments.tol.is_finite(),
                format!("{} must be a finite number >= 0", n("segments.tol")),
            ),
            (
                self.segments.max_drift > 0.0 && self.segments.max_drift.is_finite(),
                format!("{} must be > 0", n("segments.max_drift")),
            ),
            (
                self.segments.n_init >= 1,
                format!("{} must be at least 1", n("segments.n_init")),
            ),
            (
                self.segments.silhouette_sample >= 10,
                format!("{} must be at least 10", n("segments.silhouette_sample")),
            ),
            (
                (-1.0..=1.0).contains(&self.segments.min_stability),
                format!(
                    "{} must be between -1 and 1 (an adjusted Rand index)",
                    n("segments.min_stability")
                ),
            ),
            (
                self.segments.max_iter >= 1,
                format!("{} must be at least 1", n("segments.max_iter")),
            ),
            (
                !self.segments.features.is_empty()
                    || !self.segments.categorical_features.is_empty()
                    || !self.segments.feature_groups.is_empty(),
                format!("{} must name at least one feature", n("segments.features")),
            ),
            (
                self.segments.feature_groups.is_empty()
                    || (self.segments.features.is_empty()
                        && self.segments.categorical_features.is_empty()),
                format!(
                    "set {} or {}, not both: the groups name every feature clustered on",
                    n("segments.features"),
                    n("segments.feature_groups")
                ),
            ),
            (
                self.segments.feature_groups.values().all(|g| {
                    g.weight.is_finite()
                        && g.weight > 0.0
                        && !(g.features.is_empty() && g.categorical.is_empty())
                }),
                format!(
                    "every group of {} needs features (or categorical) and a weight > 0",
                    n("segments.feature_groups")
                ),
            ),
            (
                self.execution.work_tables_memory_gb >= 0.0
                    && self.execution.work_tables_memory_gb.is_finite(),
                format!(
                    "{} must be 0 (always Parquet files) or more",
                    n("execution.work_tables_memory_gb")
                ),
            ),
            (
                self.execution.memory_limit_gb >= 0.0 && self.execution.memory_limit_gb.is_finite(),
                format!(
                    "{} must be 0 (no limit) or more",
                    n("execution.memory_limit_gb")
                ),
            ),
            (
                self.recommendations.rank >= 1,
                format!("{} must be at least 1", n("recommendations.rank")),
            ),
            (
                self.recommendations.iterations >= 1,
                format!(
                    "{} must be at least 1 (0 would publish no model)",
                    n("recommendations.iterations")
                ),
            ),
            (
                self.recommendations.top_n >= 1,
                format!("{} must be at least 1", n("recommendations.top_n")),
            ),
            (
                self.recommendations.item_knn.neighbours >= 1,
                format!(
                    "{} must be at least 1",
                    n("recommendations.item_knn.neighbours")
                ),
            ),
            (
                self.recommendations.user_knn.neighbours >= 1,
                format!(
                    "{} must be at least 1",
                    n("recommendations.user_knn.neighbours")
                ),
            ),
            (
                self.recommendations.user_knn.block >= 2,
                format!(
                    "{} must be at least 2 (a block of one customer pairs no one)",
                    n("recommendations.user_knn.block")
                ),
            ),
            (
                self.recommendations.user_knn.candidates
                    >= self.recommendations.user_knn.neighbours,
                format!(
                    "{} must be at least recommendations.user_knn.neighbours",
                    n("recommendations.user_knn.candidates")
                ),
            ),
            (
                self.recommendations.model != RecommendationModel::Auto || self.evaluation.enabled,
                format!(
                    "{} = \"auto\" chooses by tonight's evaluation: it needs [evaluation] enabled = true",
                    n("recommendations.model")
                ),
            ),
            (
                self.recommendations.item_knn.bm25_k1 >= 0.0
                    && self.recommendations.item_knn.bm25_k1.is_finite(),
                format!(
                    "{} must be a finite number >= 0",
                    n("recommendations.item_knn.bm25_k1")
                ),
            ),
            (
                (0.0..=1.0).contains(&self.recommendations.item_knn.bm25_b),
                format!(
                    "{} must be between 0 and 1",
                    n("recommendations.item_knn.bm25_b")
                ),
            ),
            (
                self.recommendations.alpha >= 0.0 && self.recommendations.alpha.is_finite(),
                format!(
                    "{} must be a finite number >= 0",
                    n("recommendations.alpha")
                ),
            ),
            (
                self.recommendations.lambda >= 0.0 && self.recommendations.lambda.is_finite(),
                format!(
                    "{} must be a finite number >= 0",
                    n("recommendations.lambda")
                ),
            ),
            (
                self.recommendations.max_weight > 0.0
                    && self.recommendations.max_weight.is_finite(),
                format!(
                    "{} must be a finite number > 0",
                    n("recommendations.max_weight")
                ),
            ),
            (
                self.recommendations
                    .weights
                    .by_event_type()
                    .iter()
                    .all(|(_, w)| *w >= 0.0 && w.is_finite()),
                format!(
                    "every {} must be a finite number >= 0",
                    n("recommendations.weights.<event type>")
                ),
            ),
            (
                self.recommendations.half_life_days >= 0.0
                    && self.recommendations.half_life_days.is_finite(),
                format!(
                    "{} must be >= 0 (0: no time decay)",
                    n("recommendations.half_life_days")
                ),
            ),
            (
                self.recommendations.solver == AlsSolver::Cholesky
                    || self.recommendations.cg_steps >= 1,
                format!(
                    "{} must be at least 1 with solver = \"cg\"",
                    n("recommendations.cg_steps")
                ),
            ),
            (
                !self.evaluation.enabled
                    || (self.evaluation.holdout_days >= 1
                        && self.evaluation.holdout_days < self.window.lookback_days),
                format!(
                    "{} must be at least 1 and less than {}",
                    n("evaluation.holdout_days"),
                    n("window.lookback_days")
                ),
            ),
            (
                self.evaluation.k >= 1,
                format!("{} must be at least 1", n("evaluation.k")),
            ),
            (
                !self.propensity.enabled
                    || (self.propensity.horizon_days >= 1
                        && self.propensity.horizon_days < self.window.lookback_days),
                format!(
                    "{} must be at least 1 and less than {}",
                    n("propensity.horizon_days"),
                    n("window.lookback_days")
                ),
            ),
            (
                self.propensity.l2 > 0.0 && self.propensity.l2.is_finite(),
                format!(
                    "{} must be > 0 (it keeps separable data finite)",
                    n("propensity.l2")
                ),
            ),
            (
                self.propensity.max_iter >= 1,
                format!("{} must be at least 1", n("propensity.max_iter")),
            ),
            (
                self.propensity.tol > 0.0 && self.propensity.tol.is_finite(),
                format!("{} must be a finite number > 0", n("propensity.tol")),
            ),
            (
                !self.propensity.features.is_empty(),
                format!(
                    "{} must name at least one feature",
                    n("propensity.features")
                ),
            ),
            (
                self.gates
                    .max_share
                    .by_reason()
                    .iter()
                    .all(|(_, v)| (0.0..=1.0).contains(v)),
                format!(
                    "every {} must be between 0 and 1",
                    n("gates.max_share.<reason>")
                ),
            ),
            (
                self.gates.min_volume_ratio >= 0.0 && self.gates.min_volume_ratio.is_finite(),
                format!("{} must be >= 0 (0: off)", n("gates.min_volume_ratio")),
            ),
            (
                self.output.keep_replaced_hours >= 0.0
                    && self.output.keep_replaced_hours.is_finite(),
                format!(
                    "{} must be a finite number >= 0 (0: remove at once)",
                    n("output.keep_replaced_hours")
                ),
            ),
            (
                self.gates.volume_history_days >= 3,
                format!("{} must be at least 3", n("gates.volume_history_days")),
            ),
        ];
        if let Some((_, msg)) = checks.into_iter().find(|(ok, _)| !ok) {
            return Err(msg);
        }
        self.execution
            .apply_datafusion(&mut datafusion::prelude::SessionConfig::new())
            .map_err(|e| format!("{}.{e}", n("execution.datafusion")))?;
        for (i, audience) in self.audiences.iter().enumerate() {
            audience.check(&self.experiments)?;
            if let Some(earlier) = self.audiences[..i].iter().find(|a| {
                a.name == audience.name
                    || (a.experiment.is_some() && a.experiment == audience.experiment)
            }) {
                return Err(if earlier.name == audience.name {
                    format!("audiences: the name '{}' is used twice", audience.name)
                } else {
                    format!(
                        "audiences: audiences '{}' and '{}' name the same experiment: an \
                         experiment measures one audience",
                        earlier.name, audience.name
                    )
                });
            }
        }
        for (i, experiment) in self.experiments.iter().enumerate() {
            experiment.check()?;
            if self.experiments[..i]
                .iter()
                .any(|e| e.key == experiment.key)
            {
                return Err(format!(
                    "experiments: the key '{}' is used twice",
                    experiment.key
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use super::*;

    #[test]
    fn experiments_are_declared_with_arms_and_dates() {
        let ok = "[[experiments]]\nkey = \"spring_email\"\nstart = \"2026-11-01\"\n\
            eligible = \"segment_id = 3\"\n\
            arms = [{ name = \"control\", weight = 0.5 }, { name = \"email\", weight = 0.5 }]\n";
        let cfg = PipelineConfig::parse(ok).unwrap();
        assert_eq!(cfg.experiments[0].arms[1].name, "email");
        assert_eq!(cfg.experiments[0].end_date(), Some(None));
        let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        assert!(!cfg.experiments[0].open_on(day("2026-10-31")));
        assert!(cfg.experiments[0].open_on(day("2026-11-01")));
        for (bad, says) in [
            (ok.replace("spring_email", "Spring Email"), "[a-z0-9_]+"),
            (ok.replace("2026-11-01", "November"), "not a date"),
            (ok.replace("weight = 0.5 }]", "weight = 0 }]"), "weight > 0"),
            (
                ok.replace("weight = 0.5 }]", "weight = 0.6 }]"),
                "sum to 1.1",
            ),
            (
                ok.replace(", { name = \"email\", weight = 0.5 }", ""),
                "two arms",
            ),
            (format!("{ok}metrics = [\"ctr\"]\n"), "unknown metric 'ctr'"),
            (format!("{ok}correction = \"bonferroni\"\n"), "not one of"),
            (format!("{ok}winsorize = 99\n"), "winsorize"),
            (format!("{ok}{ok}"), "used twice"),
            (format!("{ok}end = \"2026-10-01\"\n"), "before start"),
        ] {
            let err = PipelineConfig::parse(&bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn empty_config_is_the_default() {
        assert_eq!(
            PipelineConfig::parse("").unwrap(),
            PipelineConfig::default()
        );
    }

    #[test]
    fn datafusion_settings_are_checked_by_datafusion() {
        let cfg = PipelineConfig::parse(
            "[execution]\nwork_tables_memory_gb = 0.5\n[execution.datafusion]\n\
             \"datafusion.execution.batch_size\" = 4096\n\
             \"datafusion.execution.parquet.pushdown_filters\" = true",
        )
        .unwrap();
        assert_eq!(cfg.execution.work_tables_bytes(), 512 << 20);
        assert_eq!(
            cfg.execution.datafusion["datafusion.execution.batch_size"].to_string(),
            "4096"
        );
        for (bad, named) in [
            ("\"datafusion.execution.batch_sise\" = 4096", "batch_sise"),
            (
                "\"datafusion.execution.batch_size\" = \"many\"",
                "batch_size",
            ),
        ] {
            let err = PipelineConfig::parse(&format!("[execution.datafusion]\n{bad}")).unwrap_err();
            assert!(err.contains(named), "{err}");
        }
        assert!(PipelineConfig::parse("[execution]\nwork_tables_memory_gb = -1").is_err());
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let cfg =
            PipelineConfig::parse("[segments]\nk = 4\n[recommendations.weights]\npurchase = 9.0")
                .unwrap();
        assert_eq!(cfg.segments.k, KChoice::Fixed(4));
        assert_eq!(cfg.segments.max_iter, 40);
        assert_eq!(cfg.recommendations.weights.purchase, 9.0);
        assert_eq!(cfg.recommendations.weights.view, 1.0);
    }

    #[test]
    fn the_memory_limit_is_in_gib_and_zero_means_none() {
        let cfg = PipelineConfig::default();
        assert_eq!(cfg.execution.memory_limit_bytes(), Some(6 << 30));
        let cfg = PipelineConfig::parse("[execution]\nmemory_limit_gb = 0").unwrap();
        assert_eq!(cfg.execution.memory_limit_bytes(), None);
        let cfg = PipelineConfig::parse("[execution]\nmemory_limit_gb = 0.5").unwrap();
        assert_eq!(cfg.execution.memory_limit_bytes(), Some(512 << 20));
    }

    #[test]
    fn storage_secrets_are_never_serialised_or_printed() {
        let cfg = PipelineConfig::parse(
            "[storage]\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"AKID\"\nsecret_access_key = \"TOPSECRET\"",
        )
        .unwrap();
        assert_eq!(cfg.storage.secret_access_key.as_deref(), Some("TOPSECRET"));
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("127.0.0.1:9000"));
        assert!(
            !json.contains("TOPSECRET") && !json.contains("AKID"),
            "{json}"
        );
        let debug = format!("{cfg:?}");
        assert!(
            !debug.contains("TOPSECRET") && !debug.contains("AKID"),
            "{debug}"
        );
    }

    #[test]
    fn feature_groups_name_the_features_with_a_weight_each() {
        let cfg = PipelineConfig::parse(
            "[segments.feature_groups.taste]\nfeatures = [\"interest_*\"]\n\
             [segments.feature_groups.crm]\nfeatures = [\"age\"]\ncategorical = [\"gender\"]\nweight = 0.5",
        )
        .unwrap();
        let blocks = cfg.segments.blocks();
        // In the order of the groups' names.
        assert_eq!(blocks[0].group, Some(("crm".to_string(), 0.5)));
        assert_eq!(blocks[0].categorical, vec!["gender".to_string()]);
        assert_eq!(blocks[1].group, Some(("taste".to_string(), 1.0)));
        let both = PipelineConfig::parse(
            "[segments]\nfeatures = [\"age\"]\n[segments.feature_groups.crm]\nfeatures = [\"age\"]",
        )
        .unwrap_err();
        assert!(both.contains("not both"), "{both}");
        for bad in ["weight = 0.0", "weight = nan", "features = []"] {
            let err = PipelineConfig::parse(&format!(
                "[segments.feature_groups.crm]\nfeatures = [\"age\"]\n{bad}"
            ))
            .map(|_| ())
            .unwrap_err();
            assert!(
                err.contains("feature_groups") || err.contains("duplicate"),
                "{bad}: {err}"
            );
        }
        assert_eq!(PipelineConfig::default().segments.blocks().len(), 4);
        // Features replace the default groups.
        let plain = PipelineConfig::parse("[segments]\nfeatures = [\"age\"]").unwrap();
        assert_eq!(plain.segments.blocks().len(), 1);
        assert_eq!(plain.segments.blocks()[0].group, None);
    }

    #[test]
    fn k_is_a_number_or_auto() {
        let cfg = PipelineConfig::parse(
            "[segments]\nk = \"auto\"\ninit = \"k-means++\"\ndistance = \"cosine\"",
        )
        .unwrap();
        assert_eq!(cfg.segments.k, KChoice::Auto);
        assert_eq!(cfg.segments.init, Init::KMeansPlusPlus);
        assert_eq!(cfg.segments.distance, Distance::Cosine);
        assert!(
            PipelineConfig::parse("[segments]\nk = \"many\"")
                .unwrap_err()
                .contains("auto")
        );
        let json = serde_json::to_string(&cfg.segments).unwrap();
        assert!(
            json.contains("\"k\":\"auto\"") && json.contains("k-means++"),
            "{json}"
        );
    }

    #[test]
    fn typos_and_bad_ranges_are_errors() {
        assert!(
            PipelineConfig::parse("[segments]\nkk = 4")
                .unwrap_err()
                .contains("kk")
        );
        assert!(
            PipelineConfig::parse("[segments]\nk = 1")
                .unwrap_err()
                .contains("at least 2")
        );
        // Zero iterations would publish no model recommendations and an empty evaluation.
        assert!(
            PipelineConfig::parse("[recommendations]\niterations = 0")
                .unwrap_err()
                .contains("recommendations.iterations must be at least 1")
        );
    }

    /// TOML reads `inf` and `nan` as floats: no such value (nor a negative weight) may reach
    /// the fit or the SQL text, where `inf` once read as a column name.
    #[test]
    fn every_number_is_finite_and_in_range() {
        for (toml, key) in [
            ("[recommendations]\nlambda = inf", "recommendations.lambda"),
            ("[recommendations]\nalpha = inf", "recommendations.alpha"),
            (
                "[recommendations.item_knn]\nneighbours = 0",
                "recommendations.item_knn.neighbours",
            ),
            (
                "[recommendations.item_knn]\nbm25_b = 2.0",
                "recommendations.item_knn.bm25_b",
            ),
            (
                "[recommendations.item_knn]\nbm25_k1 = -1.0",
                "recommendations.item_knn.bm25_k1",
            ),
            (
                "[recommendations.user_knn]\nneighbours = 0",
                "recommendations.user_knn.neighbours",
            ),
            (
                "[recommendations.user_knn]\nblock = 1",
                "recommendations.user_knn.block",
            ),
            (
                "[recommendations.user_knn]\nneighbours = 50\ncandidates = 10",
                "recommendations.user_knn.candidates",
            ),
            (
                "[recommendations]\nmodel = \"auto\"\n[evaluation]\nenabled = false",
                "recommendations.model",
            ),
            ("[recommendations]\nlambda = nan", "recommendations.lambda"),
            (
                "[recommendations]\nmax_weight = inf",
                "recommendations.max_weight",
            ),
            (
                "[recommendations.weights]\nview = inf",
                "recommendations.weights.<event type>",
            ),
            (
                "[recommendations.weights]\nview = -1.0",
                "recommendations.weights.<event type>",
            ),
            ("[segments]\ntol = nan", "segments.tol"),
            ("[segments]\ntol = -1.0", "segments.tol"),
            ("[segments]\nmin_stability = nan", "segments.min_stability"),
            ("[segments]\nmin_stability = 2.0", "segments.min_stability"),
            ("[propensity]\ntol = inf", "propensity.tol"),
            (
                "[execution]\nmemory_limit_gb = inf",
                "execution.memory_limit_gb",
            ),
            (
                "[output]\nkeep_replaced_hours = -1",
                "output.keep_replaced_hours",
            ),
        ] {
            let err = PipelineConfig::parse(toml).unwrap_err();
            assert!(err.contains(key), "{toml}: {err}");
        }
        PipelineConfig::parse("[recommendations.weights]\nview = 0.0").unwrap();
    }
}
