"""The fridge2fork tables as SQLAlchemy 2.x ORM classes (the mapping the app's code queries through).

The columns are those of fridgebench's schema (:mod:`fridgebench.stores.schema`, DESIGN.md), which
is fridge2fork's session schema; the application's ``ingredients`` model also maps two columns this
schema lacks (``original_name``, ``created_at``), so its ingredient SELECTs return two columns
more than these. Relationships are declared as the application declares them: a session's
ingredient rows (``cascade="all, delete-orphan"``) and each row's ingredient (loaded by
``selectinload`` where the application asks for it).

Tables are unqualified, so a connection's ``search_path`` (a scratch schema) decides which
tables they are, as for the other PostgreSQL stores.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Ingredient(Base):
    __tablename__ = "ingredients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    category: Mapped[str | None] = mapped_column(Text)
    is_common: Mapped[bool | None] = mapped_column(Boolean)


class UserFridgeSession(Base):
    __tablename__ = "user_fridge_sessions"

    session_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_accessed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), server_default=func.now())

    ingredients: Mapped[list["UserFridgeIngredient"]] = relationship(
        back_populates="session", cascade="all, delete-orphan")


class UserFridgeIngredient(Base):
    __tablename__ = "user_fridge_ingredients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(50), ForeignKey("user_fridge_sessions.session_id", ondelete="CASCADE"), nullable=False)
    ingredient_id: Mapped[int] = mapped_column(Integer, ForeignKey("ingredients.id"), nullable=False)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    session: Mapped[UserFridgeSession] = relationship(back_populates="ingredients")
    ingredient: Mapped[Ingredient] = relationship()


class RecipeIngredient(Base):
    """fridgebench's recipe -> ingredient mapping (the recipe lookups of the ``recipe`` operation)."""

    __tablename__ = "recipe_ingredients"

    recipe_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ingredient_id: Mapped[int] = mapped_column(Integer, ForeignKey("ingredients.id"), primary_key=True)
