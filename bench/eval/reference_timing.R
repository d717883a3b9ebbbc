# Times pROC on the benchmark data: Rscript reference_timing.R LARGE_CSV BOOT_CSV BOOT_REPS
# Prints "name seconds replicates" lines.
suppressMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
large <- read.csv(args[1])
boot <- read.csv(args[2])
reps <- as.integer(args[3])

t0 <- proc.time()[["elapsed"]]
r <- roc(large$label, large$score, levels = c(0, 1), direction = "<", quiet = TRUE)
ci <- ci.auc(r, method = "delong")
t1 <- proc.time()[["elapsed"]]
cat(sprintf("proc_delong_1e6 %.6f 1\n", t1 - t0))

r <- roc(boot$label, boot$score, levels = c(0, 1), direction = "<", quiet = TRUE)
set.seed(1)
t0 <- proc.time()[["elapsed"]]
ci <- ci.auc(r, method = "bootstrap", boot.n = reps, boot.stratified = TRUE, progress = "none")
t1 <- proc.time()[["elapsed"]]
cat(sprintf("proc_bootstrap_1e5 %.6f %d\n", t1 - t0, reps))
