"""gentk's metrics: VAE likelihoods and evaluator-classifier sample quality."""
from gentk.metrics.classifier import (EvaluatorCNN, accuracy, frechet_distance, get_evaluator, sample_metrics,
                                      train_evaluator)
from gentk.metrics.likelihood import importance_nll, negative_elbo

__all__ = ["EvaluatorCNN", "accuracy", "evaluate", "frechet_distance", "get_evaluator", "importance_nll",
           "negative_elbo", "sample_metrics", "train_evaluator"]


def evaluate(model, test_data, *, train_data=None, dataset_key=None, cache_dir=None, k=100, n_samples=1000,
             max_examples=None, seed=0):
    """Every metric that applies to the model and data: likelihoods for VAEs; coverage,
    entropy and Frechet distance of samples when the data has class labels (and an
    evaluator can be trained on train_data, cached under cache_dir)."""
    import torch

    results = {}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if hasattr(model, "negative_elbo"):
            results["test_neg_elbo"] = negative_elbo(model, test_data, max_examples=max_examples)
        if hasattr(model, "log_importance_weights") and k:
            results[f"test_nll_k{k}"] = importance_nll(model, test_data, k=k, max_examples=max_examples)
        if hasattr(model, "evaluate_translation"):  # image-to-image models: their own test metrics
            model.eval()
            results.update(model.evaluate_translation(test_data, max_examples=max_examples))
            model.train()
        labelled = hasattr(test_data, "tensors") and len(test_data.tensors) > 1 and \
            test_data.tensors[1].dtype == torch.long
        if labelled and train_data is not None and cache_dir is not None and n_samples:
            x, y = train_data.tensors[:2]
            net = get_evaluator(dataset_key or "data", x, y, cache_dir)
            real_x, real_y = test_data.tensors[:2]
            results["evaluator_test_accuracy"] = accuracy(net, real_x, real_y)
            model.eval()
            samples = model.sample(n_samples, generator=torch.Generator().manual_seed(seed)).cpu()
            model.train()
            results.update({f"samples_{k_}": v for k_, v in sample_metrics(net, samples, real_x).items()})
            # the same statistics on real test images: the scale to read the sample numbers against
            results.update({f"real_{k_}": v for k_, v in sample_metrics(net, real_x).items()})
    return results
