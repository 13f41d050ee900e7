"""gentk's metrics: VAE likelihoods and evaluator-classifier sample quality."""
from gentk.metrics.classifier import (EvaluatorCNN, accuracy, frechet_distance, get_evaluator, sample_metrics,
                                      train_evaluator)
from gentk.metrics.latents import (assignment_accuracy, best_assignment, capacity_tracking, categorical_accuracy,
                                   per_dimension_kl)
from gentk.metrics.likelihood import importance_nll, negative_elbo

__all__ = ["EvaluatorCNN", "accuracy", "evaluate", "frechet_distance", "get_evaluator", "importance_nll",
           "negative_elbo", "sample_metrics", "train_evaluator",
           "assignment_accuracy", "best_assignment", "capacity_tracking", "categorical_accuracy", "per_dimension_kl"]


def evaluate(model, test_data, *, train_data=None, dataset_key=None, cache_dir=None, k=100, n_samples=1000,
             max_examples=None, seed=0):
    """Every metric that applies to the model and data: likelihoods for VAEs; coverage,
    entropy and Frechet distance of samples when the data has class labels (and an
    evaluator can be trained on train_data, cached under cache_dir)."""
    import torch

    from gentk.models.base import model_can

    results = {}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        # a model trained on binarized images is scored on the test set binarized once
        likelihood_data = model.likelihood_data(test_data) if hasattr(model, "likelihood_data") else test_data
        if model_can(model, "elbo"):
            results["test_neg_elbo"] = negative_elbo(model, likelihood_data, max_examples=max_examples)
        if model_can(model, "importance_nll") and k:
            results[f"test_nll_k{k}"] = importance_nll(model, likelihood_data, k=k, max_examples=max_examples)
        if model_can(model, "latent_kl"):
            kls = per_dimension_kl(model, test_data, max_examples=max_examples)
            results.update({f"test_kl_{name}": v for name, v in kls.items()})
            results["test_kl_total"] = sum(kls.values())
            if model_can(model, "capacity"):
                results.update(capacity_tracking(model, kls))
        if model_can(model, "categorical_codes") and hasattr(test_data, "tensors") and len(test_data.tensors) > 1:
            results.update(categorical_accuracy(model, test_data, max_examples=max_examples))
        if model_can(model, "translation"):  # image-to-image models: their own test metrics
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
            classes = getattr(model, "classes", None) if model.conditional else None
            wanted = torch.arange(n_samples) % classes if isinstance(classes, int) else None
            samples = model.sample(n_samples, labels=wanted, generator=torch.Generator().manual_seed(seed)).cpu()
            model.train()
            # conditional models: samples_accuracy is the share classified as the label they were drawn for
            results.update({f"samples_{k_}": v for k_, v in sample_metrics(net, samples, real_x, wanted).items()})
            # the same statistics on real test images: the scale to read the sample numbers against
            results.update({f"real_{k_}": v for k_, v in sample_metrics(net, real_x).items()})
    return results
