"""Rating: prices (a closed union of pricing models) and the pure function that rates usage against
them. See README.md for the semantics, conventions and defaults."""

from tally.core.rating.documents import price_from_document
from tally.core.rating.models import (
    BillingTiming,
    FlatFee,
    Graduated,
    Matrix,
    MatrixRate,
    ModelKind,
    Package,
    PackageRounding,
    Percentage,
    PerUnit,
    Price,
    PricingModel,
    QuantityTransform,
    Tier,
    TierBounds,
    TransformRounding,
    Volume,
)
from tally.core.rating.rate import BreakdownLine, LineKind, Rating, RatingIncrement, rate, rate_increment
from tally.core.rating.usage import EventSummary, EventValues, GroupedQuantities, Quantity, Usage

__all__ = [
    "BillingTiming",
    "BreakdownLine",
    "EventSummary",
    "EventValues",
    "FlatFee",
    "Graduated",
    "GroupedQuantities",
    "LineKind",
    "Matrix",
    "MatrixRate",
    "ModelKind",
    "Package",
    "PackageRounding",
    "PerUnit",
    "Percentage",
    "Price",
    "PricingModel",
    "Quantity",
    "QuantityTransform",
    "Rating",
    "RatingIncrement",
    "Tier",
    "TierBounds",
    "TransformRounding",
    "Usage",
    "Volume",
    "price_from_document",
    "rate",
    "rate_increment",
]
