# Golden values of the shortcut alarm (tests/experiment/test_shortcut_alarm.cpp), computed
# independently of radprobe with R pROC (r-cran-proc) and p.adjust:
#   Rscript tests/golden/experiment/make_shortcut_alarm_goldens.R tests/golden/experiment
# Writes shortcut_alarm_scores.csv (task, label, control, best: one test image per row) and
# shortcut_alarm_expected.csv (per task: both AUROCs with DeLong 95% CIs, the paired DeLong
# difference control - best with its CI and p, the Benjamini-Hochberg p across the four tasks,
# and the alarm: the control separates the label (its DeLong CI lies above 0.5) AND is NOT
# (worse and BH p < 0.05)).
# Five tasks, 30 positives and 30 negatives each, scores rounded to 3 decimals:
#   worse   the control is far worse (tiny p: no alarm)
#   close   the control is a little worse, not significantly (alarm)
#   better  the control is better (alarm)
#   fdr     the control is worse with raw p < 0.05 but BH-adjusted p > 0.05 (alarm only after FDR)
#   chance  neither score separates the label: not significantly different, but no alarm (the
#           control does not separate the label, so nothing points at a shortcut)
suppressMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args) > 0) args[1] else "."
set.seed(20261207)
n <- 30
make <- function(task, control_shift, best_shift, noise) {
  label <- c(rep(1, n), rep(0, n))
  common <- rnorm(2 * n)  # shared by both scores: the paired design
  best <- round(best_shift * label + common + rnorm(2 * n, sd = noise), 3)
  control <- round(control_shift * label + common + rnorm(2 * n, sd = noise), 3)
  data.frame(task = task, label = label, control = control, best = best)
}
scores <- rbind(make("worse", 0.0, 2.5, 0.5),
                make("close", 1.0, 1.1, 0.4),
                make("better", 1.6, 0.9, 0.4),
                make("fdr", 0.54, 1.0, 0.45),
                make("chance", 0.0, 0.1, 0.5))
rows <- list()
for (task in unique(scores$task)) {
  d <- scores[scores$task == task, ]
  rc <- roc(d$label, d$control, levels = c(0, 1), direction = "<", quiet = TRUE)
  rb <- roc(d$label, d$best, levels = c(0, 1), direction = "<", quiet = TRUE)
  cc <- ci.auc(rc, method = "delong")
  cb <- ci.auc(rb, method = "delong")
  t <- roc.test(rc, rb, method = "delong", paired = TRUE)
  # The difference's CI as radprobe reports it: diff +- z * se, se from the test statistic.
  diff <- as.numeric(auc(rc) - auc(rb))
  se <- abs(diff / t$statistic)
  z <- qnorm(0.975)
  rows[[task]] <- data.frame(task = task, control_auc = as.numeric(auc(rc)),
                             control_lo = cc[1], control_hi = cc[3],
                             best_auc = as.numeric(auc(rb)), best_lo = cb[1], best_hi = cb[3],
                             difference = diff, ci_lo = diff - z * se, ci_hi = diff + z * se,
                             p = t$p.value)
}
expected <- do.call(rbind, rows)
expected$p_bh <- p.adjust(expected$p, method = "BH")
expected$alarm <- as.integer(expected$control_lo > 0.5 &
                             !(expected$difference < 0 & expected$p_bh < 0.05))
write.csv(scores, file.path(out, "shortcut_alarm_scores.csv"), row.names = FALSE, quote = FALSE)
write.csv(expected, file.path(out, "shortcut_alarm_expected.csv"),
          row.names = FALSE, quote = FALSE)
print(expected[, c("task", "control_auc", "best_auc", "difference", "p", "p_bh", "alarm")])
