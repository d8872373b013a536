"""POST /orders as a customer does it, over one keep-alive connection."""

import http.client
import json
import urllib.parse


class OrdersClient:
    """POST /orders over one keep-alive connection (one client per thread)."""

    def __init__(self, orders_url: str):
        parts = urllib.parse.urlsplit(orders_url)
        self._host, self._port = parts.hostname, parts.port or 80
        self._connection: http.client.HTTPConnection | None = None

    def place(self, user_id: int) -> tuple[int, int | None]:
        """(HTTP status, orderId); status 0 when the connection failed twice."""
        body = json.dumps({"userId": user_id, "itemId": 2, "qty": 1}).encode()
        for attempt in range(2):
            try:
                if self._connection is None:
                    self._connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
                self._connection.request("POST", "/orders", body, {"Content-Type": "application/json"})
                response = self._connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.close()  # the server may have closed an idle keep-alive connection: reconnect once
                if attempt:
                    return 0, None
                continue
            if response.status in (200, 201):
                return response.status, json.loads(data)["orderId"]
            return response.status, None
        return 0, None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
