//! From the command line's words ([`super::args`]) to the validated option types the library
//! takes. Configuration files are read and every value checked here, so a bad flag fails
//! before anything starts, with exit code 4 and the flag's name.

use persona_jobs::PipelineError;
use persona_jobs::commands::als::AlsOptions;
use persona_jobs::commands::audience::PreviewOptions;
use persona_jobs::commands::demo::DemoOptions;
use persona_jobs::commands::experiment::{
    AnalyseOptions, AssignOptions, PlanOptions, ReportOptions, experiment_block,
};
use persona_jobs::commands::kmeans::KMeansOptions;
use persona_jobs::commands::pipeline::{CheckOptions, RunOptions};
use persona_jobs::commands::propensity::PropensityOptions;
use persona_jobs::commands::query::SqlOptions;
use persona_jobs::config::{
    KnnSimilarity, PipelineConfig, PropensityConfig, RecommendationModel, RecommendationsConfig,
    SegmentsConfig, SettingNames,
};
use persona_jobs::engine::servers::{ExecutorOptions, SchedulerOptions};
use persona_jobs::generate::GenerateOptions;
use persona_jobs::generate::campaign::Campaign;
use persona_jobs::report_page::PageOptions;
use persona_jobs::stages::registry::NIGHT;

use super::args::{
    AlsArgs, AnalyseArgs, AssignArgs, CheckArgs, DemoArgs, EvaluateArgs, ExecutorArgs,
    ExperimentReportArgs, GenerateArgs, KMeansArgs, ModelArg, PlanArgs, PreviewArgs,
    PropensityArgs, RecommendArgs, ReportArgs, RunArgs, SchedulerArgs, SimilarityArg, SqlArgs,
};

impl TryFrom<RunArgs> for RunOptions {
    type Error = PipelineError;

    fn try_from(args: RunArgs) -> Result<Self, Self::Error> {
        Ok(RunOptions {
            input: args.input,
            output: args.output,
            date: args.date,
            config: PipelineConfig::load(args.config.as_deref())?,
            engine: args.engine,
            evaluate_only: false,
            export_split: args.export_split,
            stages: NIGHT,
        })
    }
}

impl TryFrom<EvaluateArgs> for RunOptions {
    type Error = PipelineError;

    fn try_from(args: EvaluateArgs) -> Result<Self, Self::Error> {
        Ok(RunOptions {
            evaluate_only: true,
            ..RunOptions::try_from(args.run)?
        })
    }
}

impl TryFrom<CheckArgs> for CheckOptions {
    type Error = PipelineError;

    fn try_from(args: CheckArgs) -> Result<Self, Self::Error> {
        Ok(CheckOptions {
            input: args.input,
            date: args.date,
            config: PipelineConfig::load(args.config.as_deref())?,
        })
    }
}

impl TryFrom<SqlArgs> for SqlOptions {
    type Error = PipelineError;

    fn try_from(args: SqlArgs) -> Result<Self, Self::Error> {
        Ok(SqlOptions {
            output: args.output,
            date: args.date,
            format: args.format,
            out: args.out,
            query: args.query,
            config: PipelineConfig::load(args.config.as_deref())?,
        })
    }
}

/// Checks `config` as the flags set it: a bad value is named by its flag (`--k-min`).
fn validate_flags(config: &PipelineConfig) -> Result<(), PipelineError> {
    config
        .validate_named(SettingNames::Flags)
        .map_err(PipelineError::Config)
}

impl TryFrom<KMeansArgs> for KMeansOptions {
    type Error = PipelineError;

    fn try_from(args: KMeansArgs) -> Result<Self, Self::Error> {
        let pipeline = PipelineConfig::load(args.config.as_deref())?;
        let kmeans = SegmentsConfig {
            k: args.k,
            k_min: args.k_min,
            k_max: args.k_max,
            max_iter: args.max_iter,
            tol: args.tol,
            seed: args.seed,
            features: args.features,
            log_features: args.log,
            categorical_features: args.categorical,
            // The command's features are its flags'.
            feature_groups: Default::default(),
            standardize: !args.no_standardize,
            init: args.init,
            n_init: args.n_init,
            distance: args.distance,
            weight_column: args.weight,
            ..pipeline.segments.clone()
        };
        validate_flags(&PipelineConfig {
            segments: kmeans.clone(),
            ..PipelineConfig::default()
        })?;
        Ok(KMeansOptions {
            input: args.input,
            output: args.output,
            kmeans,
            pipeline,
            engine: args.engine,
            init_from: args.init_from,
        })
    }
}

impl TryFrom<PropensityArgs> for PropensityOptions {
    type Error = PipelineError;

    fn try_from(args: PropensityArgs) -> Result<Self, Self::Error> {
        let pipeline = PipelineConfig::load(args.config.as_deref())?;
        let model = PropensityConfig {
            features: args.features,
            log_features: args.log,
            categorical_features: args.categorical,
            l2: args.l2,
            max_iter: args.max_iter,
            tol: args.tol,
            class_weight: args.class_weight,
            ..pipeline.propensity.clone()
        };
        validate_flags(&PipelineConfig {
            propensity: model.clone(),
            ..PipelineConfig::default()
        })?;
        if !(args.test_share > 0.0 && args.test_share < 1.0) {
            return Err(PipelineError::Config(
                "--test-share must be between 0 and 1".into(),
            ));
        }
        Ok(PropensityOptions {
            input: args.input,
            output: args.output,
            label: args.label,
            id: args.id,
            test_share: args.test_share,
            model,
            pipeline,
            engine: args.engine,
        })
    }
}

impl TryFrom<AlsArgs> for AlsOptions {
    type Error = PipelineError;

    fn try_from(args: AlsArgs) -> Result<Self, Self::Error> {
        let pipeline = PipelineConfig::load(args.config.as_deref())?;
        let als = RecommendationsConfig {
            rank: args.rank,
            iterations: args.iterations,
            lambda: args.lambda,
            alpha: args.alpha,
            weighted_lambda: args.weighted_lambda,
            solver: args.solver,
            cg_steps: args.cg_steps,
            seed: args.seed,
            top_n: args.top_n,
            explicit: args.explicit,
            // `persona als` is ALS whatever the file's `model` says (`persona recommend` sets it).
            model: RecommendationModel::Als,
            ..pipeline.recommendations.clone()
        };
        validate_flags(&PipelineConfig {
            recommendations: als.clone(),
            ..PipelineConfig::default()
        })?;
        Ok(AlsOptions {
            input: args.input,
            output: args.output,
            user: args.user,
            item: args.item,
            weight: args.weight,
            holdout: args.holdout,
            keep_seen: args.keep_seen,
            als,
            pipeline,
            engine: args.engine,
        })
    }
}

impl TryFrom<RecommendArgs> for AlsOptions {
    type Error = PipelineError;

    fn try_from(args: RecommendArgs) -> Result<Self, Self::Error> {
        let model = match args.model {
            ModelArg::Als => RecommendationModel::Als,
            ModelArg::ItemKnn => RecommendationModel::ItemKnn,
            ModelArg::UserKnn => RecommendationModel::UserKnn,
        };
        if args.als.explicit && model != RecommendationModel::Als {
            return Err(PipelineError::Config(
                "--explicit: only --model als fits explicit ratings".to_string(),
            ));
        }
        let mut opts = AlsOptions::try_from(args.als)?;
        opts.als.model = model;
        opts.als.item_knn.neighbours = args.neighbours;
        opts.als.user_knn.neighbours = args.neighbours;
        opts.als.user_knn.candidates = opts.als.user_knn.candidates.max(args.neighbours);
        opts.als.item_knn.similarity = match args.similarity {
            SimilarityArg::Bm25 => KnnSimilarity::Bm25,
            SimilarityArg::Cosine => KnnSimilarity::Cosine,
        };
        validate_flags(&PipelineConfig {
            recommendations: opts.als.clone(),
            ..PipelineConfig::default()
        })?;
        Ok(opts)
    }
}

impl From<GenerateArgs> for GenerateOptions {
    fn from(args: GenerateArgs) -> Self {
        GenerateOptions {
            scale: args.scale,
            seed: args.seed,
            out: args.out,
            end_date: args.end_date,
            days: args.days,
            anonymous_share: args.anonymous_share,
            types: persona_jobs::generate::family::TypeMix {
                by: args.types_by,
                strength: args.type_strength,
            },
            campaign: (args.campaign_lift > 0.0).then(|| Campaign {
                start: args.end_date - chrono::Duration::days(Campaign::DEMO_DAYS - 1),
                lift: args.campaign_lift,
            }),
        }
    }
}

impl From<DemoArgs> for DemoOptions {
    fn from(args: DemoArgs) -> Self {
        DemoOptions {
            dir: args.dir,
            scale: args.scale,
            seed: args.seed,
        }
    }
}

impl From<SchedulerArgs> for SchedulerOptions {
    fn from(args: SchedulerArgs) -> Self {
        SchedulerOptions {
            bind_host: args.bind,
            port: args.port,
            executor_timeout_seconds: args.executor_timeout,
        }
    }
}

impl From<ExecutorArgs> for ExecutorOptions {
    fn from(args: ExecutorArgs) -> Self {
        ExecutorOptions {
            bind_host: args.bind,
            external_host: args.external_host,
            port: args.port,
            grpc_port: args.grpc_port,
            scheduler_host: args.scheduler_host,
            scheduler_port: args.scheduler_port,
            task_slots: args.task_slots,
            work_dir: args.work_dir,
            heartbeat_interval_seconds: args.heartbeat_interval,
            stock: args.without_persona_functions,
        }
    }
}

impl From<PlanArgs> for PlanOptions {
    fn from(args: PlanArgs) -> Self {
        Self {
            baseline: args.baseline,
            mde: args.mde,
            power: args.power,
            alpha: args.alpha,
            arms: args.arms,
        }
    }
}

impl TryFrom<ReportArgs> for PageOptions {
    type Error = PipelineError;

    fn try_from(args: ReportArgs) -> Result<Self, Self::Error> {
        Ok(Self {
            output: args.output,
            date: args.date,
            to: args.to,
            config: PipelineConfig::load(args.config.as_deref())?,
        })
    }
}

impl TryFrom<PreviewArgs> for PreviewOptions {
    type Error = PipelineError;

    fn try_from(args: PreviewArgs) -> Result<Self, Self::Error> {
        Ok(Self {
            output: args.output,
            name: args.name,
            predicate: args.predicate,
            config: PipelineConfig::load(args.config.as_deref())?,
            date: args.date,
            input: args.input,
        })
    }
}

impl TryFrom<ExperimentReportArgs> for ReportOptions {
    type Error = PipelineError;

    fn try_from(args: ExperimentReportArgs) -> Result<Self, Self::Error> {
        Ok(Self {
            output: args.output,
            key: args.key,
            date: args.date,
            config: PipelineConfig::load(args.config.as_deref())?,
            json: args.json,
        })
    }
}

impl TryFrom<AnalyseArgs> for AnalyseOptions {
    type Error = PipelineError;

    fn try_from(args: AnalyseArgs) -> Result<Self, Self::Error> {
        Ok(Self {
            input: args.input,
            config: PipelineConfig::load(Some(&args.config))?,
            json: args.json,
        })
    }
}

impl From<AssignArgs> for AssignOptions {
    fn from(args: AssignArgs) -> Self {
        Self {
            block: experiment_block(
                &args.key,
                &args.arms,
                args.eligible.as_deref(),
                args.start,
                args.end,
                &args.metrics,
                args.winsorize,
            ),
            config: args.config,
            output: args.output,
        }
    }
}
