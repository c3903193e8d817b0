package org.actionnet.edge.demo

import org.junit.Assert.assertTrue
import org.junit.Assert.fail

/** Asserts that [body] throws an IllegalArgumentException whose message contains [message]. */
internal fun rejects(message: String, body: () -> Unit) {
    try {
        body()
    } catch (e: IllegalArgumentException) {
        assertTrue("'${e.message}' should contain '$message'", e.message!!.contains(message))
        return
    }
    fail("expected IllegalArgumentException: $message")
}
