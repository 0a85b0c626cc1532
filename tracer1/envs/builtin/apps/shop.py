"""Shop: a category chosen on the first screen decides what the product list shows later; a product page with a
quantity stepper; the cart, checkout with a typed address, and the order confirmation."""

from __future__ import annotations

from tracer1.envs.builtin.model import Screen, State, World, money
from tracer1.envs.builtin.ui import Page

MAX_QTY = 9


def cart_count(state: State) -> int:
    return sum(state.cart.values())


def cart_total(state: State, world: World) -> int:
    return sum(world.product(name).price * qty for name, qty in state.cart.items())


def cart_button(state: State) -> tuple[str, tuple]:
    return f"Cart ({cart_count(state)})", ("push", "shop.cart")


def root(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Shop", cart_button(state))
    page.section("Choose a category")
    for c in ("All", *world.categories):
        page.radio(c, state.category == c, ("category", c))
    page.footer("Show products", ("push", "shop.products"))


def products(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("All products" if state.category == "All" else state.category, cart_button(state))
    page.checkbox("Sort by price", state.sort_by_price, ("sort",))
    for p in world.in_category(state.category, state.sort_by_price):
        page.item(p.name, ("push", "shop.product", p.name), value=p.price_text)


def product(page: Page, state: State, world: World, screen: Screen) -> None:
    p = world.product(screen.arg or "")
    page.appbar(screen.arg or "Product", cart_button(state))
    if p is None:
        page.text("Product not found")
        return
    page.text("Price", p.price_text)
    page.text(p.blurb)
    page.stepper("Quantity", screen.fields.get("qty", "1"), ("Decrease quantity", ("qty", -1)),
                 ("Increase quantity", ("qty", 1)))
    page.button("Add to cart", ("add", p.name))
    if screen.notice:
        page.text(screen.notice)


def cart(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Cart")
    if not state.cart:
        page.text("Your cart is empty")
    side = page.m(88)
    for name, qty in state.cart.items():
        page.item(name, None, value=f"{qty} x {world.product(name).price_text}", right=side)
        page.side_button(f"Remove {name}", "Remove", ("remove", name), side)
    page.text("Total", money(cart_total(state, world)))
    page.footer("Checkout", ("push", "shop.checkout"), enabled=bool(state.cart))


def checkout(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Checkout")
    page.text("Items", f"{cart_count(state)} items, {money(cart_total(state, world))}")
    page.textbox("Shipping address", screen.fields.get("address", ""), "address", screen.focus == "address")
    page.button("Place order", ("order",))


def done(page: Page, state: State, world: World, screen: Screen) -> None:
    page.appbar("Order placed")
    page.text("Thank you! Your order is on its way.")
    page.text("Ship to", screen.arg or "")
    page.button("Continue shopping", ("shop_home",))


# -- commands ---------------------------------------------------------------------------------------------------

def category(state: State, world: World, name: str) -> str | None:
    if state.category == name:
        return f"{name} is already selected"
    state.category = name
    return None


def sort(state: State, world: World) -> str | None:
    state.sort_by_price = not state.sort_by_price
    state.top.scroll = 0
    return None


def qty(state: State, world: World, delta: int) -> str | None:
    value = int(state.top.fields.get("qty", "1")) + delta
    if not 1 <= value <= MAX_QTY:
        return f"the quantity is already at its {'lowest' if delta < 0 else 'highest'}"
    state.top.fields["qty"] = str(value)
    state.top.notice = None
    return None


def add(state: State, world: World, name: str) -> str | None:
    n = int(state.top.fields.get("qty", "1"))
    state.cart[name] = state.cart.get(name, 0) + n
    state.top.fields["qty"] = "1"
    state.top.notice = f"Added {n} to cart"
    return None


def remove(state: State, world: World, name: str) -> str | None:
    state.cart.pop(name, None)
    return None


def order(state: State, world: World) -> str | None:
    address = " ".join(state.top.fields.get("address", "").split())
    if not state.cart:
        return "the cart is empty"
    if not address:
        return "the shipping address is empty"
    state.orders.append((tuple(state.cart.items()), address))
    state.cart.clear()
    state.stack[-1] = Screen("shop.done", address)
    return None


def shop_home(state: State, world: World) -> str | None:
    del state.stack[2:]
    return None


def _init_product(state: State, world: World, screen: Screen) -> None:
    screen.fields["qty"] = "1"


SCREENS = {"shop": root, "shop.products": products, "shop.product": product, "shop.cart": cart,
           "shop.checkout": checkout, "shop.done": done}
COMMANDS = {"category": category, "sort": sort, "qty": qty, "add": add, "remove": remove, "order": order,
            "shop_home": shop_home}
ON_PUSH = {"shop.product": _init_product}
