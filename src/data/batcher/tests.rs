use super::*;

fn example(len: usize) -> Example {
    Example {
        inputs: (10..10 + len).collect(),
        targets: (11..11 + len).collect(),
    }
}

#[test]
fn padding_and_mask_layout() {
    let a = example(3);
    let b = example(1);
    let batch = TextBatch::from_examples(&[&a, &b]);
    assert_eq!((batch.batch, batch.time), (2, 3));
    assert_eq!(batch.inputs, vec![10, 11, 12, 10, PAD, PAD]);
    assert_eq!(batch.targets, vec![11, 12, 13, 11, PAD, PAD]);
    assert_eq!(batch.real, vec![true, true, true, true, false, false]);
    assert_eq!(batch.real_tokens(), 4);
    assert!((batch.padding_fraction() - 2.0 / 6.0).abs() < 1e-12);
}

#[test]
fn bucketed_evaluation_batches_hold_the_same_sentences_with_less_padding() {
    let examples: Vec<Example> = (0..200).map(|i| example(1 + (i * 37) % 23)).collect();
    for bucket_pool in [0, 4] {
        let plan = BatchPlan {
            sentences: 8,
            max_tokens: None,
            bucket_pool,
            max_len: 24,
        };
        let plain = eval_batches(&examples, &plan, 10, EvalBatching::Plain);
        let bucketed = eval_batches(&examples, &plan, 10, EvalBatching::Bucketed);
        let again = eval_batches(&examples, &plan, 10, EvalBatching::Bucketed);
        let sentences = |bs: &[TextBatch]| {
            let mut v: Vec<Vec<usize>> = bs
                .iter()
                .flat_map(|b| {
                    (0..b.batch).map(move |r| {
                        (0..b.time)
                            .filter(|&t| b.real[r * b.time + t])
                            .map(|t| b.inputs[r * b.time + t])
                            .collect()
                    })
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(plain.len(), 10);
        assert_eq!(
            sentences(&plain),
            sentences(&bucketed),
            "pool {bucket_pool}"
        );
        let pads = |bs: &[TextBatch]| {
            bs.iter()
                .map(|b| b.batch * b.time - b.real_tokens())
                .sum::<usize>()
        };
        assert!(
            pads(&bucketed) < pads(&plain),
            "pool {bucket_pool}: {} vs {}",
            pads(&bucketed),
            pads(&plain)
        );
        assert_eq!(
            bucketed
                .iter()
                .map(|b| b.inputs.clone())
                .collect::<Vec<_>>(),
            again.iter().map(|b| b.inputs.clone()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn truncation_is_counted() {
    let vocab = Vocab::build(&[vec!["a".into(), "b".into()]], 10).unwrap();
    let sents = vec![vec!["a".to_string(); 5], vec!["b".to_string()]];
    let enc = encode_split(&sents, &vocab, 4).unwrap();
    assert_eq!(enc.truncated, 1);
    assert_eq!(enc.examples[0].inputs.len(), 4);
    assert_eq!(enc.examples[1].inputs.len(), 2); // <bos> b
    assert!(encode_split(&sents, &vocab, 0).is_err());
}

#[test]
fn token_budget_is_respected_and_every_example_used_once() {
    let examples: Vec<Example> = (1..=40).map(|i| example(i % 13 + 1)).collect();
    for bucket_pool in [0, 4] {
        let plan = BatchPlan {
            sentences: 0,
            max_tokens: Some(40),
            bucket_pool,
            max_len: 13,
        };
        let mut rng = StdRng::seed_from_u64(7);
        let batches = plan.epoch(&examples, Some(&mut rng));
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        for b in &batches {
            let longest = b.iter().map(|&i| examples[i].inputs.len()).max().unwrap();
            assert!(b.len() * longest <= 40);
        }
    }
}

#[test]
fn bucketing_reduces_padding() {
    let examples: Vec<Example> = (0..512).map(|i| example((i * 37) % 50 + 1)).collect();
    let pad = |bucket_pool| {
        let plan = BatchPlan {
            sentences: 16,
            max_tokens: None,
            bucket_pool,
            max_len: 50,
        };
        let mut it = TrainBatches::new(&examples, plan, 3);
        let bs: Vec<TextBatch> = (0..32).map(|_| it.next().unwrap()).collect();
        bs.iter().map(|b| b.padding_fraction()).sum::<f64>() / bs.len() as f64
    };
    let (random, bucketed) = (pad(0), pad(8));
    assert!(
        bucketed < random / 2.0,
        "bucketed {bucketed} vs random {random}"
    );
}

#[test]
fn same_seed_same_batches() {
    let examples: Vec<Example> = (0..100).map(|i| example(i % 9 + 1)).collect();
    let plan = BatchPlan {
        sentences: 8,
        max_tokens: None,
        bucket_pool: 0,
        max_len: 9,
    };
    let a: Vec<_> = TrainBatches::new(&examples, plan, 5).take(30).collect();
    let b: Vec<_> = TrainBatches::new(&examples, plan, 5).take(30).collect();
    let c: Vec<_> = TrainBatches::new(&examples, plan, 6).take(30).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
}
