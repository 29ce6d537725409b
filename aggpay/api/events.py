"""GET /api/v1/events — pull the events a merchant may have missed (merchant-api.md "Notifications and events").

Each item is exactly the body aggpay posts to the notify URL (``trades.services.events.event_payload``), so a
merchant can feed pulled and pushed events through the same code: de-duplicate by ``id``, order by ``sequence``.
"""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.response import Response

from aggpay.api.lists import ListParamsSerializer, page, parse_list_params
from aggpay.api.schema import api_schema
from aggpay.api.views import MerchantAPIView
from aggpay.errors import InvalidRequest
from trades.services.events import EVENT_TYPES, event_payload, event_scope, events_for_app


class EventListParamsSerializer(ListParamsSerializer):
    starting_after = serializers.CharField(required=False, max_length=64,
                                           help_text="an event id (`evt_...`) of this app's events, whatever its "
                                                     "type: the page after that event (`type` then narrows it)")
    # One of the types there are: `order.paid` (not a type) used to answer an empty list, read as "no payments".
    type = serializers.ChoiceField(choices=EVENT_TYPES, required=False,
                                   help_text="only events of this type, e.g. `order.succeeded`")


class EventDataOutputSerializer(serializers.Serializer):
    object = serializers.DictField(help_text="the order, refund or merchant as the API returns it, at the time "
                                             "of the event")


class EventOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`evt_...`; de-duplicate by it: deliveries may arrive more than once")
    type = serializers.CharField(help_text="`order.succeeded`, `order.failed`, `order.closed`, `order.reversed`, "
                                           "`refund.succeeded`, `refund.failed`, `refund.closed`; partners also "
                                           "`merchant.submitted`, `merchant.returned`, `merchant.rejected`, "
                                           "`merchant.contract_updated`, `merchant.activated`, `merchant.frozen`, "
                                           "`merchant.unfrozen`")
    created_at = serializers.DateTimeField()
    sequence = serializers.IntegerField(min_value=1, help_text="increases with each event of the same object: "
                                                               "order the events of an object by it")
    data = EventDataOutputSerializer()


class EventListOutputSerializer(serializers.Serializer):
    data = EventOutputSerializer(many=True, help_text="newest first")
    has_more = serializers.BooleanField()


class EventListView(MerchantAPIView):
    """Any authenticated app: its merchant's events of the types its scopes receive (``payments``: orders and
    refunds; ``onboarding``: the ``merchant.*`` events of the partner's merchants)."""

    @api_schema(
        operation_id="events_list",
        summary="List events",
        description="The events notifications were (or are being) sent for, newest first — for merchants who "
                    "missed notifications. Each item has the same shape as a notification body.",
        parameters=[EventListParamsSerializer],
        responses={200: EventListOutputSerializer},
        tags=["events"],
    )
    def get(self, request):
        params = parse_list_params(EventListParamsSerializer, request.query_params)
        if params.get("type") and not request.auth.has_scope(event_scope(params["type"])):
            # docs/api.md "Pulling events": an app sees the event types of its scopes. A type it can never receive
            # is refused like one that does not exist ("Errors": never an empty list that reads as "nothing
            # happened"). Bug: a payments app asking ?type=merchant.submitted got 200 {"data": []}.
            scope = event_scope(params["type"])
            raise InvalidRequest(f"type: {params['type']} goes to apps with the {scope} scope, and this app does "
                                 f"not have it: it lists the types of its scopes only", param="type")
        where = {"type": params["type"]} if params.get("type") else None
        rows, has_more = page(events_for_app(request.auth), params=params, id_field="event_id", where=where)
        return Response({"data": [event_payload(event) for event in rows], "has_more": has_more})
