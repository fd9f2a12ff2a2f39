"""The ``aggregator`` export of an aggregate component (componentize-py's bindings of
``plugin.wit``, world ``aggregate``). ``weir plugin build`` generates the entry module that
imports the plugin's module, then this class."""

from componentize_py_types import Err
from wit_world.exports import aggregator

from .calls import AggregateCalls, CallError

_calls = []


def _instance():
    # componentize-py may make an export object per call: the plugin lives here instead.
    if not _calls:
        _calls.append(AggregateCalls())
    return _calls[0]


class Aggregator:
    def info(self):
        name, version, description = _instance().info()
        return aggregator.PluginInfo(name=name, version=version, description=description)

    def init(self, config):
        try:
            inputs, output = _instance().init(config)
        except CallError as err:
            raise Err(str(err)) from None
        return aggregator.Signature(inputs=inputs, output=output)

    def update(self, states, rows, columns, group_of_row):
        try:
            return _instance().update(states, rows, columns, group_of_row)
        except CallError as err:
            raise Err(str(err)) from None

    def merge(self, left, right):
        try:
            return _instance().merge(left, right)
        except CallError as err:
            raise Err(str(err)) from None

    def finish(self, states):
        try:
            return _instance().finish(states)
        except CallError as err:
            raise Err(str(err)) from None

    def state_version(self):
        return _instance().state_version()
