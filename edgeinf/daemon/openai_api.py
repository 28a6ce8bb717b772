"""placeholder"""
def routes(route):
    return []
