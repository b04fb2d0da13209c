//! What the commands print when they succeed: `Display` of their report types. The same text
//! goes to a terminal and to a scheduler's log; the machine-readable record is the manifest
//! (or `report.json`), not this.

use std::fmt::{self, Display, Formatter};

use crate::commands::als::AlsCommandReport;
use crate::commands::kmeans::KMeansSummary;
use crate::commands::pipeline::{CheckReport, RunSummary};
use crate::commands::propensity::PropensityCommandReport;
use crate::engine::progress::group_digits;
use crate::gates::DropCount;

fn drop_counts(f: &mut Formatter<'_>, counts: &[DropCount]) -> fmt::Result {
    for d in counts {
        writeln!(
            f,
            "  {:<12} {:<18} {:>10}",
            d.source,
            d.reason,
            group_digits(d.rows)
        )?;
    }
    Ok(())
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

impl Display for AlsCommandReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.fit {
            Some(fit) => writeln!(
                f,
                "\nALS on {} users x {} items ({} pairs): rank {}, {} iterations, {:.3}s per iteration, loss {:.6e}, {:.1}s in all",
                group_digits(fit.users as u64),
                group_digits(fit.items as u64),
                group_digits(fit.interactions),
                self.config.rank,
                fit.iterations,
                mean(&fit.seconds_per_iteration),
                fit.loss.last().copied().unwrap_or(f64::NAN),
                self.seconds
            )?,
            None => writeln!(
                f,
                "\n{} on {} users x {} items ({} pairs): {} neighbours each, {:.1}s in all",
                self.model,
                group_digits(self.matrix.users),
                group_digits(self.matrix.items),
                group_digits(self.matrix.pairs),
                if self.model == "item_knn" {
                    self.config.item_knn.neighbours
                } else {
                    self.config.user_knn.neighbours
                },
                self.seconds
            )?,
        }
        if let Some(rmse) = &self.rmse {
            match rmse.holdout {
                Some(h) => writeln!(
                    f,
                    "  RMSE: {:.4} on the training ratings, {h:.4} on the holdout",
                    rmse.train
                )?,
                None => writeln!(f, "  RMSE: {:.4} on the training ratings", rmse.train)?,
            }
        }
        for m in self.holdout.iter().flatten() {
            writeln!(
                f,
                "  {:<8} precision@k {:.4}  recall@k {:.4}  ndcg@k {:.4}  map@k {:.4}  coverage {:.3}  ({} users)",
                m.model,
                m.precision_at_k,
                m.recall_at_k,
                m.ndcg_at_k,
                m.map_at_k,
                m.coverage,
                m.users
            )?;
        }
        writeln!(f, "\npublished to {}", self.output)
    }
}

fn metric(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"))
}

impl Display for PropensityCommandReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let fit = &self.fit;
        writeln!(
            f,
            "\nLogistic regression on {} rows, {} features: {} Newton steps{}, objective {:.6e}, {:.1}s in all",
            group_digits(fit.rows),
            self.features.scales.len(),
            fit.iterations,
            if fit.converged { " (converged)" } else { "" },
            fit.objective.last().copied().unwrap_or(f64::NAN),
            self.seconds
        )?;
        if !self.constant_features.is_empty() {
            writeln!(
                f,
                "  left out (constant): {}",
                self.constant_features.join(", ")
            )?;
        }
        let h = &self.holdout;
        writeln!(
            f,
            "  holdout: {} rows ({} positive): AUC {}  log loss {}  Brier {}\n",
            group_digits(h.rows),
            group_digits(h.positives),
            metric(h.auc),
            metric(h.log_loss),
            metric(h.brier)
        )?;
        writeln!(
            f,
            "  {:<32} {:>12}  (per standard deviation)",
            "term", "coefficient"
        )?;
        for (name, c) in &self.coefficients {
            writeln!(f, "  {name:<32} {c:>+12.5}")?;
        }
        writeln!(
            f,
            "\nOutputs: {0}/scores/, {0}/model/, {0}/report/report.json",
            self.output
        )
    }
}

impl Display for KMeansSummary {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        let fit = &r.fit;
        writeln!(
            f,
            "\nK-Means on {} rows: k={} ({}), {} iterations{}, inertia {:.6e}, {:.3}s per iteration, {:.1}s in all",
            group_digits(r.rows),
            fit.k,
            fit.k_choice,
            fit.iterations,
            if fit.converged { " (converged)" } else { "" },
            fit.final_inertia,
            mean(&fit.seconds_per_iteration),
            r.seconds
        )?;
        for c in &fit.candidates {
            writeln!(
                f,
                "  k={:<3} silhouette {:+.4}  inertia {:.6e}",
                c.k, c.silhouette, c.inertia
            )?;
        }
        writeln!(f)?;
        let total: u64 = self.segments.iter().map(|s| s.size).sum();
        for s in &self.segments {
            let share = 100.0 * s.size as f64 / total.max(1) as f64;
            writeln!(
                f,
                "  {:>2}  {:<44} {:>10} ({share:4.1}%)",
                s.id,
                s.label,
                group_digits(s.size)
            )?;
        }
        writeln!(
            f,
            "\nOutputs: {0}/assignments/, {0}/centroids/, {0}/report/report.json",
            self.output
        )
    }
}

impl Display for CheckReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\nInputs for {}: raw rows per source and reason",
            self.date
        )?;
        drop_counts(f, &self.data_quality)?;
        writeln!(f, "\nGates:")?;
        for g in &self.gates {
            let value = if g.value.is_nan() {
                "-".to_string()
            } else if g.gate == "source_present" {
                format!("{}", g.value)
            } else {
                format!("{:.1}%", 100.0 * g.value)
            };
            writeln!(
                f,
                "  {:<5} {:<17} {:<11} {:>8}  {}",
                if g.passed { "ok" } else { "FAIL" },
                g.gate,
                g.source,
                value,
                g.detail
            )?;
        }
        Ok(())
    }
}

impl Display for RunSummary {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let m = &self.manifest;
        writeln!(
            f,
            "\nPersona run {} for {} finished in {:.1}s",
            m.run_id, m.date, m.seconds
        )?;
        writeln!(f, "\nPublished tables:")?;
        for (table, rows) in &m.tables {
            let at = self.locations.get(table).cloned().unwrap_or_default();
            writeln!(f, "  {table:<16} {:>10} rows  {at}", group_digits(*rows))?;
        }
        f.write_str(&self.reports)?;
        if !m.gates.is_empty() {
            let closest = m
                .gates
                .iter()
                .filter(|g| g.gate.ends_with("_share") && g.threshold > 0.0)
                .max_by(|a, b| (a.value / a.threshold).total_cmp(&(b.value / b.threshold)));
            let closest = closest.map_or(String::new(), |g| {
                format!(
                    "; closest to its limit: {} on {} at {:.1}% of {:.1}%",
                    g.gate,
                    g.source,
                    100.0 * g.value,
                    100.0 * g.threshold
                )
            });
            writeln!(
                f,
                "\nGates: all {} passed{closest} (see the manifest's gates)",
                m.gates.len(),
            )?;
        }
        writeln!(f, "\nData quality (rows per source and reason):")?;
        drop_counts(f, &m.data_quality)?;
        if let Some(report) = self.locations.get(crate::report_page::FOLDER) {
            writeln!(f, "\nReport: {report}/{}", crate::report_page::FILE)?;
        }
        writeln!(
            f,
            "\nManifest: {}/_runs/dt={}/manifest.json",
            m.output, m.date
        )
    }
}
