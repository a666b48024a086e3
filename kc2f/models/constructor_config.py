"""`ConstructorConfig`: a Keras model's `get_config` / `from_config`, read from its constructor."""

import inspect

import keras


class ConstructorConfig:
    """Mixin giving a `keras.Model` the config Keras serialises: exactly its constructor's arguments.

    `get_config` returns `name`, `trainable`, `dtype` and, for every named
    parameter of the class's `__init__`, the attribute of that name (or the one
    `config_attributes` maps it to), so a model stores each argument it is
    given and nothing else needs writing; `from_config` rebuilds it. Put it
    before `keras.Model` in the bases:

        class MyModel(ConstructorConfig, keras.Model):
            config_attributes = {"pooling": "pooling_mode"}  # `self.pooling` is a layer
    """

    # Constructor argument -> the attribute holding it, where the names differ.
    config_attributes = {}

    @classmethod
    def constructor_arguments(cls):
        """Names of the named parameters of `cls.__init__` (not `self`, not `*args` / `**kwargs`)."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.name != "self"
                and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }
        for name in self.constructor_arguments():
            config[name] = getattr(self, self.config_attributes.get(name, name))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
