# %% [markdown]
# # archbench from a notebook
#
# Cells in the `# %%` format (VS Code, Jupyter with jupytext, Spyder). Start the service first
# (`make up`); `ARCHBENCH_URL` and `ARCHBENCH_API_KEY` are read from the environment when set.

# %%
from archbench.client import Client
from archbench.errors import InvalidInput

ab = Client()  # or Client("http://host:8000", api_key="...")

# %% [markdown]
# Submit from a JSON file, a dict, or Keras `Sequential` models (sent as their `to_json()`;
# nothing is trained or deserialised locally, and without Keras objects TensorFlow is not needed).

# %%
import keras  # noqa: E402

conv16 = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ],
    name="conv16",
)
conv_pair = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ],
    name="conv8x2",
)
comparison = ab.submit(
    {
        "name": "one wide conv vs two narrow ones",
        "dataset": {"name": "mnist_5k", "max_samples": 1000},
        "training": {"epochs": 2, "batch_size": 64},
        "seeds": [0, 1, 2],
    },
    variants=[conv16, conv_pair],
)
cid = comparison["id"]

# %% [markdown]
# Follow it live (server-sent events), or just `ab.wait(cid, timeout=600)`.

# %%
for event in ab.events(cid, timeout=900):
    if event.event == "epoch":
        d = event.data
        print(f"{d['variant']} seed {d['seed']} epoch {d['epoch']}: {d['val_accuracy']:.3f}")
    elif event.event == "comparison_finished":
        print("finished:", event.data["status"])

# %% [markdown]
# Tables as pandas DataFrames (pandas is optional; without `as_frame` you get dicts).

# %%
trials = ab.trials(cid, as_frame=True)
metrics = ab.metrics(cid, as_frame=True)
metrics.pivot_table(index="epoch", columns="variant", values="val_accuracy")

# %%
report = ab.report(cid)
print(report["verdict"])
ab.report(cid, as_frame=True)[["name", "params", "mean", "ci95"]]

# %% [markdown]
# Errors are typed and carry the problem object, with located errors for bad input.

# %%
try:
    ab.submit({"name": "broken", "dataset": {"name": "mnist_5k"}, "variants": [{"name": "x"}]})
except InvalidInput as exc:
    for error in exc.errors:
        print(error["loc"], error["msg"])
