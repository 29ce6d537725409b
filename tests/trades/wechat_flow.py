"""WeChat Pay steps the trades tests share, played on the simulator."""

from __future__ import annotations

from django.utils import timezone

from channels.simulators import wechatpay as wechat_sim


def success_notice(shop, simulator_server, order_id):
    """A signed TRANSACTION.SUCCESS callback about ``order_id`` as the channel would send it when its payment and our
    close cross (the simulator's own record is left as it is, so a close still goes through there)."""
    sim = simulator_server.app.apps["wechatpay"]
    sp_mchid = shop.accounts["wechatpay"].config["sp_mchid"]
    trade = sim.store.get(wechat_sim.NS_TRADES, f"{sp_mchid}:{order_id}")
    resource = sim.transaction(trade)
    resource.update(trade_state="SUCCESS", trade_state_desc="支付成功", transaction_id="4200000000000000000000000001",
                    success_time=timezone.now().isoformat(timespec="seconds"), bank_type="OTHERS",
                    payer={"sp_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"})
    resource["amount"].update(payer_total=trade["total"], payer_currency="CNY")
    sim.notify(sim.account(sp_mchid), trade["notify_url"], event_type="TRANSACTION.SUCCESS", summary="支付成功",
               original_type="transaction", resource=resource)
    shop.sim("wechatpay", "/_control/flush")
