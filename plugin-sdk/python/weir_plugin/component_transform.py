"""The ``transformer`` export of a transform component (componentize-py's bindings of
``plugin.wit``, world ``transform``). ``weir plugin build`` generates the entry module that
imports the plugin's module, then this class."""

from componentize_py_types import Err
from wit_world.exports import transformer

from .calls import CallError, TransformCalls

_calls = []


def _instance():
    # componentize-py may make an export object per call: the plugin lives here instead.
    if not _calls:
        _calls.append(TransformCalls())
    return _calls[0]


class Transformer:
    def info(self):
        name, version, description = _instance().info()
        return transformer.PluginInfo(name=name, version=version, description=description)

    def init(self, config):
        try:
            _instance().init(config)
        except CallError as err:
            raise Err(str(err)) from None

    def output_schema(self, input):
        try:
            return _instance().output_schema(input)
        except CallError as err:
            raise Err(str(err)) from None

    def process(self, rows, columns):
        try:
            return _instance().process(rows, columns)
        except CallError as err:
            raise Err(str(err)) from None

    def reads(self):
        # Every column is sent: the Python SDK decodes only the columns a plugin reads, on
        # demand, so it cannot say beforehand which those are.
        return None
