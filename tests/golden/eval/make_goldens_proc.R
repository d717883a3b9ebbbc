# pROC (r-cran-proc) golden values for radprobe's eval component. Called by make_goldens.py:
#   Rscript make_goldens_proc.R OUT_DIR LARGE_CSV
# Writes OUT_DIR/proc_goldens.csv with rows dataset,quantity,value (%.17g).
suppressMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
out_dir <- args[1]
large_csv <- args[2]

rows <- list()
add <- function(dataset, quantity, value) {
  rows[[length(rows) + 1]] <<- data.frame(dataset = dataset, quantity = quantity,
                                          value = sprintf("%.17g", value))
}

# direction "<": controls (0) score lower than cases (1); never flipped, so AUC < 0.5 stays.
make_roc <- function(d, col) roc(d$label, d[[col]], levels = c(0, 1), direction = "<",
                                 quiet = TRUE)

load <- function(name) {
  if (name == "large") read.csv(large_csv) else read.csv(file.path(out_dir, paste0("data_", name, ".csv")))
}

names <- c("ties", "tiny", "imbalance", "perfect", "continuous", "large")
data <- lapply(names, load)
names(data) <- names
for (name in names) {
  d <- data[[name]]
  r1 <- make_roc(d, "score1")
  r2 <- make_roc(d, "score2")
  for (tag in c("score1", "score2")) {
    r <- if (tag == "score1") r1 else r2
    add(name, paste0("auc_", tag), as.numeric(auc(r)))
    add(name, paste0("delong_var_", tag), var(r, method = "delong"))
    ci <- suppressWarnings(ci.auc(r, method = "delong", conf.level = 0.95))
    add(name, paste0("delong_ci_lo_", tag), ci[1])
    add(name, paste0("delong_ci_hi_", tag), ci[3])
    ci90 <- suppressWarnings(ci.auc(r, method = "delong", conf.level = 0.9))
    add(name, paste0("delong_ci90_lo_", tag), ci90[1])
    add(name, paste0("delong_ci90_hi_", tag), ci90[3])
  }
  t <- roc.test(r1, r2, method = "delong", paired = TRUE)
  add(name, "paired_z", as.numeric(t$statistic))
  add(name, "paired_p", t$p.value)
  add(name, "paired_ci_lo", t$conf.int[1])
  add(name, "paired_ci_hi", t$conf.int[2])
}

# Unpaired (independent groups): t with Welch-type df.
for (pair in list(c("ties", "imbalance"), c("tiny", "continuous"), c("continuous", "large"))) {
  a <- make_roc(data[[pair[1]]], "score1")
  b <- make_roc(data[[pair[2]]], "score2")
  t <- roc.test(a, b, method = "delong", paired = FALSE)
  key <- paste0(pair[1], "_vs_", pair[2])
  add(key, "unpaired_t", as.numeric(t$statistic))
  add(key, "unpaired_df", as.numeric(t$parameter))
  add(key, "unpaired_p", t$p.value)
}

# Multiple comparisons (ties and boundary values included).
p <- c(0.01, 0.04, 0.04, 0.2, 0.0005, 0.9, 1, 0.03, 0.049, 0.5, 0.011, 0)
for (i in seq_along(p)) {
  add("p_values", paste0("p_", i - 1), p[i])
  add("p_values", paste0("bh_", i - 1), p.adjust(p, method = "BH")[i])
  add("p_values", paste0("holm_", i - 1), p.adjust(p, method = "holm")[i])
}

# Distribution functions (R's qnorm, pnorm, pt, qt) for radprobe's own implementations.
qn <- c(0.975, 0.95, 0.5, 0.005, 1e-10, 0.999999)
for (i in seq_along(qn)) {
  add("dist", paste0("qnorm_p_", i - 1), qn[i])
  add("dist", paste0("qnorm_", i - 1), qnorm(qn[i]))
}
tt <- c(-2.5, 0.3, 1.7, -0.01, 8)
tdf <- c(3.5, 10, 301.3, 1, 2.2)
for (i in seq_along(tt)) {
  add("dist", paste0("pt_t_", i - 1), tt[i])
  add("dist", paste0("pt_df_", i - 1), tdf[i])
  add("dist", paste0("pt_", i - 1), pt(tt[i], tdf[i]))
  add("dist", paste0("qt975_", i - 1), qt(0.975, tdf[i]))
}

out <- do.call(rbind, rows)
write.csv(out, file.path(out_dir, "proc_goldens.csv"), row.names = FALSE, quote = FALSE)
