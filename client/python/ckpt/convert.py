"""Conversions between Python values and ckpt.v1 messages.

Item keys are plain Python values in the SDK: an int is an index, a str is a name
(proto ItemKey's oneof). Durations are seconds as float (or a datetime.timedelta).
"""

from __future__ import annotations

import datetime
from typing import Union

from google.protobuf import duration_pb2
from google.protobuf import timestamp_pb2

from ckpt.v1 import checkpoint_pb2 as pb

# A duration: seconds, a timedelta, or a Duration message.
Seconds = Union[int, float, datetime.timedelta, duration_pb2.Duration]
# A point in time: seconds since the epoch, a datetime (naive means UTC), or a Timestamp.
Time = Union[int, float, datetime.datetime, timestamp_pb2.Timestamp]


def item_key(key: Union[int, str, pb.ItemKey]) -> pb.ItemKey:
    """Returns the ItemKey for an int index or a str name.

    Raises TypeError for anything else (bool included: True is not item 1), ValueError
    for a negative index.
    """
    if isinstance(key, pb.ItemKey):
        return key
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise TypeError(f"an item key is an int index or a str name, not {type(key).__name__}")
    if isinstance(key, int):
        if key < 0:
            raise ValueError(f"item index {key} is negative")
        return pb.ItemKey(index=key)
    return pb.ItemKey(name=key)


def key_value(key: pb.ItemKey) -> Union[int, str]:
    """Returns the int index or str name held by an ItemKey."""
    return key.index if key.WhichOneof("key") == "index" else key.name


def duration(value: Seconds) -> duration_pb2.Duration:
    """Returns a Duration for seconds (int or float), a timedelta, or a Duration."""
    if isinstance(value, duration_pb2.Duration):
        return value
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    result = duration_pb2.Duration()
    result.FromNanoseconds(int(round(value * 1e9)))
    return result


def seconds(value: duration_pb2.Duration) -> float:
    """Returns a Duration as float seconds."""
    return value.seconds + value.nanos / 1e9


def timestamp(value: Time) -> timestamp_pb2.Timestamp:
    """Returns a Timestamp for a datetime (naive means UTC), seconds since the epoch, or a
    Timestamp."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        value = value.timestamp()
    seconds_part, nanos = divmod(int(round(value * 1e9)), 1_000_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds_part, nanos=nanos)
