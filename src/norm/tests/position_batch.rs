//! BatchNorm per token position (`position-batch`) against a float64 reference: statistics per
//! (position, feature) over the real tokens at that position, running statistics for positions
//! with fewer than 2 real tokens, per-position running updates.

use super::*;
use crate::norm::position_batch::PositionBatchNorm;

/// Per position: `Some((mean, biased var))` over its real tokens, `None` with fewer than 2.
fn position_stats(x: &[f64]) -> Vec<Option<(Vec<f64>, Vec<f64>)>> {
    stats_by(x, &(0..B * T).map(|p| p % T).collect::<Vec<_>>())
}

/// Per group `g` of `group` (one per `(batch, time)` position): `Some((mean, biased var))` over
/// the real tokens in it, `None` with fewer than 2.
fn stats_by(x: &[f64], group: &[usize]) -> Vec<Option<(Vec<f64>, Vec<f64>)>> {
    let real = real();
    (0..T)
        .map(|g| {
            let rows: Vec<usize> = (0..B * T).filter(|&p| real[p] && group[p] == g).collect();
            if rows.len() < 2 {
                return None;
            }
            let n = rows.len() as f64;
            let mean: Vec<f64> = (0..D)
                .map(|d| rows.iter().map(|&p| x[p * D + d]).sum::<f64>() / n)
                .collect();
            let var = (0..D)
                .map(|d| {
                    rows.iter()
                        .map(|&p| (x[p * D + d] - mean[d]).powi(2))
                        .sum::<f64>()
                        / n
                })
                .collect();
            Some((mean, var))
        })
        .collect()
}

/// Normalizes every position with `stats[t]`, or with the running `(rm[t], rv[t])` where the
/// position has no batch statistics.
fn position_apply(
    x: &[f64],
    stats: &[Option<(Vec<f64>, Vec<f64>)>],
    rm: &[Vec<f64>],
    rv: &[Vec<f64>],
    g: &[f64],
    be: &[f64],
) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let (p, d) = (i / D, i % D);
            let t = p % T;
            let (m, v) = match &stats[t] {
                Some((m, v)) => (m[d], v[d]),
                None => (rm[t][d], rv[t][d]),
            };
            g[d] * (x[i] - m) / (v + EPS).sqrt() + be[d]
        })
        .collect()
}

fn running_init() -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    (vec![vec![0.0; D]; T], vec![vec![1.0; D]; T])
}

#[test]
fn position_batch_norm_matches_float64_reference() {
    let (g, be) = gamma_beta();
    let norm = with_params(NormKind::PositionBatch);
    let m = mask();
    let x = values(B * T * D, 41, 2.0, 0.3);
    let w = values(B * T * D, 42, 1.0, 0.0);
    let (rm0, rv0) = running_init();
    let stats = position_stats(&x);
    // LENGTHS [4, 2, 3]: positions 0-2 have 3, 3 and 2 real tokens, position 3 only one
    assert!(stats[..3].iter().all(Option::is_some) && stats[3].is_none());
    let r = run(&norm, &x, &w, &ctx(&m, true, true, 1));
    let f = |x: &[f64]| position_apply(x, &position_stats(x), &rm0, &rv0, &g, &be);
    let real = real();
    let real_rows =
        |v: &[f64]| -> Vec<f64> { (0..v.len()).filter(|i| real[i / D]).map(|i| v[i]).collect() };
    assert_close("position BN y", &real_rows(&r.y), &real_rows(&f(&x)), 1e-5);
    assert_close("position BN dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
    assert_close(
        "position BN dbeta",
        r.dbeta.as_ref().unwrap(),
        &dbeta_ref(&w),
        1e-5,
    );
    // the statistics used, flattened over positions: batch ones, running ones at position 3
    let s = r.stats.unwrap();
    let used_mean: Vec<f64> = (0..T)
        .flat_map(|t| stats[t].as_ref().map_or(rm0[t].clone(), |(m, _)| m.clone()))
        .collect();
    let used_var: Vec<f64> = (0..T)
        .flat_map(|t| stats[t].as_ref().map_or(rv0[t].clone(), |(_, v)| v.clone()))
        .collect();
    assert_close(
        "position BN used mean",
        &to_vec(s.mean.unwrap()),
        &used_mean,
        1e-5,
    );
    assert_close("position BN used var", &to_vec(s.second), &used_var, 1e-5);
    assert!(
        r.grad_stats.is_none(),
        "no gradient probes for per-position statistics"
    );
    // running statistics: momentum 0.1 where the position had batch statistics, untouched else
    let (mut rm, mut rv) = running_init();
    for t in 0..T {
        if let Some((mean, var)) = &stats[t] {
            rm[t] = mean.iter().map(|v| 0.1 * v).collect();
            rv[t] = var.iter().map(|v| 0.9 + 0.1 * v).collect();
        }
    }
    // evaluation: every position with its running statistics, nothing updated
    let x2 = values(B * T * D, 43, 2.0, -0.1);
    let none = vec![None; T];
    let r = run(&norm, &x2, &w, &ctx(&m, false, false, 2));
    let f = |x: &[f64]| position_apply(x, &none, &rm, &rv, &g, &be);
    assert_close("position BN eval y", &r.y, &f(&x2), 1e-5);
    assert_close(
        "position BN eval dx",
        &r.dx,
        &finite_diff(&f, &x2, &w),
        1e-5,
    );
    assert!(r.stats.is_none());
}

#[test]
fn a_pad_changes_no_position_statistics() {
    let norm = with_params(NormKind::PositionBatch);
    let m = mask();
    let x = values(B * T * D, 44, 1.0, 0.2);
    let w = values(B * T * D, 45, 1.0, 0.0);
    let base = run(&norm, &x, &w, &ctx(&m, true, false, 1));
    let real = real();
    for p in (0..B * T).filter(|&p| !real[p]) {
        let mut xp = x.clone();
        for d in 0..D {
            xp[p * D + d] += 50.0;
        }
        let r = run(&norm, &xp, &w, &ctx(&m, true, false, 1));
        let (a, b) = (base.stats.as_ref().unwrap(), r.stats.unwrap());
        assert_close(
            &format!("means with pad {p} moved"),
            &to_vec(b.mean.unwrap()),
            &to_vec(a.mean.clone().unwrap()),
            1e-6,
        );
        assert_close(
            &format!("variances with pad {p} moved"),
            &to_vec(b.second),
            &to_vec(a.second.clone()),
            1e-6,
        );
    }
}

#[test]
fn positions_beyond_the_batch_keep_their_running_statistics() {
    let m = mask();
    let norm = NormLayer::PositionBatch(PositionBatchNorm::new(D, T + 2, EPS, 0.5, &device()));
    let x = values(B * T * D, 46, 1.0, 0.0);
    let _ = norm.forward(t3(&x), &ctx(&m, true, true, 1));
    let NormLayer::PositionBatch(pb) = &norm else {
        unreachable!()
    };
    let rm = to_vec(pb.running_mean.value_sync());
    let rv = to_vec(pb.running_var.value_sync());
    let stats = position_stats(&x);
    for t in 0..T + 2 {
        let (want_m, want_v): (Vec<f64>, Vec<f64>) = match stats.get(t).and_then(|s| s.as_ref()) {
            Some((mean, var)) => (
                mean.iter().map(|v| 0.5 * v).collect(),
                var.iter().map(|v| 0.5 + 0.5 * v).collect(),
            ),
            None => (vec![0.0; D], vec![1.0; D]),
        };
        assert_close(
            &format!("running mean {t}"),
            &rm[t * D..(t + 1) * D],
            &want_m,
            1e-5,
        );
        assert_close(
            &format!("running var {t}"),
            &rv[t * D..(t + 1) * D],
            &want_v,
            1e-5,
        );
    }
}

#[test]
fn position_batch_needs_text() {
    let mut cfg = test_config(NormKind::PositionBatch);
    cfg.validate(D).unwrap();
    cfg.max_positions = None;
    assert!(cfg
        .validate(D)
        .unwrap_err()
        .to_string()
        .contains("--task text"));
}

/// `random-group-batch`'s groups: `stats` over the groups the norm draws at `step`.
fn group_stats(x: &[f64], step: usize) -> (Vec<usize>, Vec<Option<(Vec<f64>, Vec<f64>)>>) {
    use crate::norm::position_batch::{group_seed, random_groups};
    let groups = random_groups(&real(), T, group_seed(step));
    let stats = stats_by(x, &groups);
    (groups, stats)
}

#[test]
fn random_groups_keep_the_sizes_of_the_positions_and_change_every_step() {
    use crate::norm::position_batch::random_groups;
    let real = real();
    let sizes = |groups: &[usize]| -> Vec<usize> {
        (0..T)
            .map(|g| (0..B * T).filter(|&p| real[p] && groups[p] == g).count())
            .collect()
    };
    let by_position: Vec<usize> = (0..B * T).map(|p| p % T).collect();
    let draws: Vec<Vec<usize>> = (1..=20).map(|s| random_groups(&real, T, s)).collect();
    for g in &draws {
        assert_eq!(sizes(g), sizes(&by_position));
        // padded positions keep their own label
        for p in (0..B * T).filter(|&p| !real[p]) {
            assert_eq!(g[p], p % T);
        }
        // a group never holds two tokens of one sentence
        for b in 0..B {
            let mut own: Vec<usize> = (0..T)
                .filter(|&t| real[b * T + t])
                .map(|t| g[b * T + t])
                .collect();
            own.sort();
            own.dedup();
            assert_eq!(own.len(), LENGTHS[b]);
        }
    }
    assert_eq!(draws[0], random_groups(&real, T, 1), "one draw per seed");
    assert!(draws.iter().any(|g| *g != draws[0]), "draws differ");
    assert!(draws.iter().any(|g| *g != by_position), "not the positions");
}

#[test]
fn random_group_batch_norm_matches_float64_reference() {
    let (g, be) = gamma_beta();
    let norm = with_params(NormKind::RandomGroupBatch);
    let m = mask();
    let x = values(B * T * D, 51, 2.0, 0.3);
    let w = values(B * T * D, 52, 1.0, 0.0);
    let (rm0, rv0) = running_init();
    let step = 3;
    let (groups, stats) = group_stats(&x, step);
    let r = run(&norm, &x, &w, &ctx(&m, true, true, step));
    // each token normalized with its group's statistics (running ones for a group under 2)
    let f = |x: &[f64]| -> Vec<f64> {
        let (_, st) = group_stats(x, step);
        (0..x.len())
            .map(|i| {
                let (p, d) = (i / D, i % D);
                let k = groups[p];
                let (mm, v) = match &st[k] {
                    Some((mm, v)) => (mm[d], v[d]),
                    None => (rm0[k][d], rv0[k][d]),
                };
                g[d] * (x[i] - mm) / (v + EPS).sqrt() + be[d]
            })
            .collect()
    };
    let real = real();
    let real_rows =
        |v: &[f64]| -> Vec<f64> { (0..v.len()).filter(|i| real[i / D]).map(|i| v[i]).collect() };
    assert_close("group BN y", &real_rows(&r.y), &real_rows(&f(&x)), 1e-5);
    assert_close("group BN dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
    let s = r.stats.unwrap();
    let used_var: Vec<f64> = (0..T)
        .flat_map(|k| stats[k].as_ref().map_or(rv0[k].clone(), |(_, v)| v.clone()))
        .collect();
    assert_close("group BN used var", &to_vec(s.second), &used_var, 1e-5);
    // a pad changes no group statistic
    let mut xp = x.clone();
    for p in (0..B * T).filter(|&p| !real[p]) {
        for d in 0..D {
            xp[p * D + d] += 50.0;
        }
    }
    let r2 = run(&norm, &xp, &w, &ctx(&m, true, false, step));
    let r1 = run(&norm, &x, &w, &ctx(&m, true, false, step));
    assert_close(
        "group BN stats with pads moved",
        &to_vec(r2.stats.unwrap().second),
        &to_vec(r1.stats.unwrap().second),
        1e-6,
    );
}

#[test]
fn position_batch_pooled_first_pools_position_zero_only() {
    let (g, be) = gamma_beta();
    let norm = with_params(NormKind::PositionBatchPooledFirst);
    let m = mask();
    let real = real();
    let x = values(B * T * D, 61, 2.0, 0.3);
    let w = values(B * T * D, 62, 1.0, 0.0);
    let (rm0, rv0) = running_init();
    // position 0: mean and biased variance over every real token of the batch
    let pooled = |x: &[f64]| stats_by(x, &vec![0; B * T]).remove(0).unwrap();
    let used = |x: &[f64]| {
        let mut s = position_stats(x);
        s[0] = Some(pooled(x));
        s
    };
    let r = run(&norm, &x, &w, &ctx(&m, true, true, 1));
    let f = |x: &[f64]| position_apply(x, &used(x), &rm0, &rv0, &g, &be);
    let real_rows =
        |v: &[f64]| -> Vec<f64> { (0..v.len()).filter(|i| real[i / D]).map(|i| v[i]).collect() };
    assert_close("pooled-first y", &real_rows(&r.y), &real_rows(&f(&x)), 1e-5);
    assert_close("pooled-first dx", &r.dx, &finite_diff(&f, &x, &w), 1e-5);
    let s = r.stats.unwrap();
    let (pm, pv) = pooled(&x);
    let used_var = to_vec(s.second);
    assert_close("pooled-first slot 0 var", &used_var[..D], &pv, 1e-5);
    assert_close(
        "pooled-first slot 0 mean",
        &to_vec(s.mean.unwrap())[..D],
        &pm,
        1e-5,
    );
    // positions 1.. as position-batch: a different first slot, the same others
    let plain = run(
        &with_params(NormKind::PositionBatch),
        &x,
        &w,
        &ctx(&m, true, false, 1),
    );
    let plain_var = to_vec(plain.stats.unwrap().second);
    assert_close(
        "pooled-first other slots",
        &used_var[D..],
        &plain_var[D..],
        1e-6,
    );
    assert!((0..D).any(|d| (used_var[d] - plain_var[d]).abs() > 1e-3));
}
