/**
 * LangChain4j embedding models on aule-models: {@link dev.aule.langchain4j.AuleAllMiniLmL6V2EmbeddingModel}, a
 * drop-in for {@code AllMiniLmL6V2EmbeddingModel} in pure Java.
 */
package dev.aule.langchain4j;
