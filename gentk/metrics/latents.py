"""What the latents of beta-VAE / Joint-VAE hold, measured on test data.

- ``per_dimension_kl``: the mean KL of each latent (nats); latents near 0 carry nothing.
- ``categorical_accuracy``: unsupervised classification accuracy of a categorical code
  (Joint-VAE): each category is matched to at most one label by the one-to-one assignment
  that classifies the most examples correctly (``best_assignment``, the Hungarian algorithm,
  exact), then the accuracy under that matching.
- ``capacity_tracking``: how close the measured KL is to the capacity C the model was
  trained to hold at its current step (beta-VAE B, Joint-VAE).

Models provide ``kl_per_dimension(x) -> {name: [B]}``, ``categorical_codes(x) -> [B, J]``
and ``capacity_targets() -> {name: (C, latent-name prefix)}``.
"""
import torch

from gentk.metrics.likelihood import image_batches


def best_assignment(weights):
    """Rows matched one-to-one to columns so that the matched weights sum to the maximum.

    weights: a 2-D tensor or nested list (rectangular allowed). Returns [(row, column), ...]
    for min(rows, columns) pairs. The Hungarian algorithm with potentials (O(n^3)), exact.
    """
    w = torch.as_tensor(weights, dtype=torch.float64)
    if w.dim() != 2:
        raise ValueError(f"best_assignment: weights must be a 2-D matrix, got shape {tuple(w.shape)}")
    rows, cols = w.shape
    n = max(rows, cols)
    if n == 0 or min(rows, cols) == 0:
        return []
    cost = torch.zeros(n + 1, n + 1, dtype=torch.float64)  # 1-based; padding cells weigh 0
    cost[1:rows + 1, 1:cols + 1] = -w
    a = cost.tolist()
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)
    match, way = [0] * (n + 1), [0] * (n + 1)  # match[column] = row
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        minv, used = [inf] * (n + 1), [False] * (n + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = match[j0], inf, 0
            for j in range(1, n + 1):
                if not used[j]:
                    reduced = a[i0][j] - u[i0] - v[j]
                    if reduced < minv[j]:
                        minv[j], way[j] = reduced, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    pairs = [(match[j] - 1, j - 1) for j in range(1, n + 1) if match[j] <= rows and j <= cols]
    return sorted(pairs)


def assignment_accuracy(codes, labels, n_codes=None, n_labels=None):
    """Accuracy of ``codes`` (cluster ids) as a classifier of ``labels`` under the best
    one-to-one matching of codes to labels; codes left unmatched count as wrong."""
    codes, labels = torch.as_tensor(codes).long().flatten(), torch.as_tensor(labels).long().flatten()
    if codes.shape != labels.shape:
        raise ValueError(f"assignment_accuracy: codes has {codes.numel()} entries but labels has {labels.numel()}")
    if codes.numel() == 0:
        raise ValueError("assignment_accuracy: no examples")
    if int(codes.min()) < 0 or int(labels.min()) < 0:
        raise ValueError("assignment_accuracy: codes and labels must be non-negative integers")
    n_codes = n_codes or int(codes.max()) + 1
    n_labels = n_labels or int(labels.max()) + 1
    counts = torch.zeros(n_codes, n_labels, dtype=torch.float64)
    counts.index_put_((codes, labels), torch.ones(len(codes), dtype=torch.float64), accumulate=True)
    correct = sum(counts[r, c].item() for r, c in best_assignment(counts))
    return correct / len(codes)


@torch.no_grad()
def per_dimension_kl(model, data, batch_size=500, max_examples=None):
    """{latent name: mean KL in nats} over the data (model.kl_per_dimension)."""
    model.eval()
    totals, count = {}, 0
    for x in image_batches(data, batch_size, max_examples, model.device):
        for name, kl in model.kl_per_dimension(x).items():
            totals[name] = totals.get(name, 0.0) + kl.double().sum().item()
        count += len(x)
    model.train()
    return {name: total / count for name, total in totals.items()}


@torch.no_grad()
def categorical_accuracy(model, data, batch_size=500, max_examples=None):
    """{"categorical_accuracy_c<j>": accuracy} of each categorical latent against the labels."""
    images, labels = data.tensors[:2]
    if max_examples is not None:
        images, labels = images[:max_examples], labels[:max_examples]
    model.eval()
    codes = torch.cat([model.categorical_codes(images[i:i + batch_size].to(model.device)).cpu()
                       for i in range(0, len(images), batch_size)])
    model.train()
    return {f"categorical_accuracy_c{j}": assignment_accuracy(codes[:, j], labels, n_codes=k)
            for j, k in enumerate(model.categories)}


def capacity_tracking(model, kl_by_latent):
    """For each capacity the model targets now: the C, the measured KL (the sum of the
    per-latent KLs whose names start with its prefix) and |KL - C| / C."""
    out = {}
    for name, (target, prefix) in model.capacity_targets().items():
        measured = sum(v for k, v in kl_by_latent.items() if k.startswith(prefix))
        out[f"capacity_{name}_target"] = target
        out[f"capacity_{name}_measured"] = measured
        out[f"capacity_{name}_relative_gap"] = abs(measured - target) / target if target > 0 else float("nan")
    return out
