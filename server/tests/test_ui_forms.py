"""The run form: fields from a flow's parameters, and the values read back by type."""

from __future__ import annotations

import pytest
from plait_server.ui.forms import FormError, parameter_fields, parse_parameters

PARAMETERS = [
    {"name": "count", "required": True, "default": None},
    {"name": "rate", "default": 0.5, "required": False},
    {"name": "retries", "default": 3, "required": False},
    {"name": "dry_run", "default": False, "required": False},
    {"name": "table", "default": "events", "required": False},
    {"name": "columns", "default": ["a", "b"], "required": False},
    {"name": "anything", "default": None, "required": False},
    {"name": "token", "required": False, "secret": True},
]


def fields():
    return parameter_fields(PARAMETERS)


def test_field_types_come_from_the_defaults_and_required_ones_come_first():
    by_name = {f.name: f for f in fields()}
    assert fields()[0].name == "count"
    assert {n: f.kind for n, f in by_name.items()} == {
        "count": "any",
        "rate": "float",
        "retries": "int",
        "dry_run": "bool",
        "table": "str",
        "columns": "json",
        "anything": "any",
        "token": "any",
    }
    assert by_name["count"].required and not by_name["rate"].required
    assert by_name["token"].secret
    assert by_name["columns"].default_text == '["a", "b"]'
    assert by_name["dry_run"].default_text == "false"


def test_values_are_parsed_by_type_and_empty_optional_fields_use_the_default():
    form = {
        "param.count": "12",
        "param.rate": "0.25",
        "param.retries": "",
        "param.dry_run": "true",
        "param.table": " spaced ",
        "param.columns": '["x"]',
        "param.anything": "plain words",
        "param.token": "never sent",
    }
    assert parse_parameters(fields(), form) == {
        "count": 12,
        "rate": 0.25,
        "dry_run": True,
        "table": " spaced ",
        "columns": ["x"],
        "anything": "plain words",
    }


def test_bad_values_name_every_field_at_once():
    form = {"param.rate": "fast", "param.retries": "2.5", "param.columns": "[1,", "param.dry_run": "maybe"}
    with pytest.raises(FormError) as caught:
        parse_parameters(fields(), form)
    errors = caught.value.errors
    assert errors["count"] == "required"
    assert "a number" in errors["rate"]
    assert "whole number" in errors["retries"]
    assert "JSON" in errors["columns"]
    assert "yes or no" in errors["dry_run"]


def test_nan_and_infinity_are_refused():
    with pytest.raises(FormError) as caught:
        parse_parameters(fields(), {"param.count": "1", "param.rate": "nan", "param.columns": "[NaN]"})
    assert set(caught.value.errors) == {"rate", "columns"}
